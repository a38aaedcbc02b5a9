/*  config - the YAML configuration, loaded strictly into typed structs.
 *
 *  One file (config/meshd.yaml documents every key and its default).  Unknown
 *  keys, wrong types, bad values, duplicate keys, anchors/aliases and more than one
 *  document are errors, each reported as "FILE:LINE:COL: what is wrong, and what
 *  would be right" (1-based line and column).  Relative paths in the file
 *  (rules, backend files, directories, the decision log) are resolved against
 *  the directory of the config file, so a config can be moved with its rules.
 *
 *  Ownership: mesh_config_load returns a config the caller owns; everything in it
 *  is owned by the config and freed by mesh_config_destroy.  Secrets are never
 *  stored here: only the paths of the files that hold them.
 */
#ifndef MESH_CONFIG_H
#define MESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

//  kafka.prefetch_messages when the config does not say (see event_kafka.c).
#define MESH_PREFETCH_DEFAULT 500000

//  Where a value came from, for messages about it after loading (rule files that
//  do not compile are reported at the line that names them).
typedef struct {
    int line, col;                  //  1-based; 0 when unknown
} mesh_config_pos_t;

typedef enum {
    MESH_PARAM_STRING,
    MESH_PARAM_INTEGER,
    MESH_PARAM_NUMBER,
    MESH_PARAM_BOOLEAN,
} mesh_param_type_t;

//  One typed parameter of a declared action.
typedef struct {
    char *name;
    mesh_param_type_t type;
    bool required;                  //  default true
    char *pattern;                  //  strings: POSIX ERE matched against the whole value; NULL = any
    size_t max_length;              //  strings: default 256
    char **enum_values;             //  strings: allowed values; NULL/0 = any
    size_t enum_count;
    bool has_min, has_max;          //  integer/number bounds (inclusive)
    double min, max;
    bool allow_dash;                //  exec: a value may start with '-' where it begins an
                                    //  argument (default false: refused)
} mesh_param_spec_t;

typedef enum {
    MESH_ACTION_LOG,                //  record only
    MESH_ACTION_KAFKA,              //  produce a JSON message to `topic`, keyed by the decision id
    MESH_ACTION_EXEC,               //  run a program on the host (meshd runs it, not the agent)
    MESH_ACTION_WEBHOOK,            //  POST a signed JSON body to a URL (meshd sends it)
} mesh_action_kind_t;

//  kind exec: the environment when the config gives no `env`.
#define MESH_EXEC_PATH_DEFAULT  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MESH_EXEC_LANG_DEFAULT  "LANG=C.UTF-8"

//  kind: exec (docs/actions.md).  The model never chooses the program or the shape of
//  argv: each {param} in an argv element is replaced by the validated value, and the
//  element stays one argument.
typedef struct {
    char *program;                  //  absolute; checked like a rule file (trusted)
    char **argv;                    //  the template, argv[1..] (argv[0] is the program)
    size_t argc;
    char **env;                     //  "NAME" (taken from meshd's environment) or
    size_t env_count;               //  "NAME=value"; default PATH and LANG (docs)
    bool stdin_decision;            //  stdin: "decision" (the decision JSON) or "null" (default)
    char *cwd;                      //  default "/"
    char *user, *group;             //  run as (meshd must be root); NULL: meshd's own
    long cpu_s;                     //  RLIMIT_CPU, default 10
    long as_bytes;                  //  RLIMIT_AS, default 1 GiB
    long nofile;                    //  RLIMIT_NOFILE, default 64
    long nproc;                     //  RLIMIT_NPROC, default 256 (per user: threads count)
    int timeout_ms;                 //  then SIGTERM to its process group; default 30000
    int kill_after_ms;              //  then SIGKILL; default 5000
    size_t capture_bytes;           //  of stdout and of stderr each, default 65536
} mesh_action_exec_t;

//  kind: webhook (docs/actions.md).
typedef struct {
    char *url;                      //  https (http only with allow_http)
    bool allow_http;
    bool allow_private;             //  loopback and private ranges (link-local and cloud
                                    //  metadata never)
    char **headers;                 //  extra "Name: value" lines
    size_t header_count;
    char *secret_file;              //  the HMAC-SHA256 key, or
    char *secret_credential;        //  a systemd credential name ($CREDENTIALS_DIRECTORY/NAME)
    int timeout_ms;                 //  one attempt; default 10000
    int connect_timeout_ms;         //  default 3000
    int attempts;                   //  on connection errors and 5xx; default 3, 1..10
    int retry_base_ms, retry_max_ms;    //  full-jitter backoff; default 500, 10000
    size_t excerpt_bytes;           //  of the response kept in the outcome; default 1024
} mesh_action_webhook_t;

//  A token budget at one scope (the daemon, an agent, a backend, an action): at most
//  `tokens` per window, where the window is rolling (the last window_s seconds) or the
//  calendar day in time_zone; `reserve` of them only high-priority incidents may spend.
//  docs/reasoning.md, "Token budgets".
typedef enum {
    MESH_WINDOW_ROLLING,            //  the last window_s seconds (default)
    MESH_WINDOW_DAY,                //  the calendar day in time_zone, from local midnight
} mesh_window_kind_t;

typedef struct {
    long tokens;                    //  0 = no limit at this scope (used is still counted)
    mesh_window_kind_t window;
    int window_s;                   //  rolling: default 3600, 1 s to 31 days
    char *time_zone;                //  day: IANA name, default "UTC"
    long reserve;                   //  default 0; must be below tokens
} mesh_budget_config_t;

//  An action the model may propose, declared once at top level (`actions:`).
typedef struct {
    char *name;
    mesh_action_kind_t kind;
    char *description;              //  shown to the model in the prompt
    char *topic;                    //  kafka: destination topic (never `__*`, never an
                                    //  agent's input topic unless allow_input_topic)
    bool allow_input_topic;         //  kafka: the topic may feed an agent (a loop, on purpose)
    mesh_param_spec_t *params;
    size_t param_count;
    mesh_budget_config_t budget;    //  tokens spent on attempts proposing it (and reasks about it)
    mesh_action_exec_t exec;        //  kind exec
    mesh_action_webhook_t webhook;  //  kind webhook
    bool approval_required;         //  approval: required (default none)
    int approval_timeout_s;         //  then the fallback is taken; default 3600
    int rate_count;                 //  rate: "N/window" across all agents; 0 = no limit
    int rate_window_s;
} mesh_action_spec_t;

typedef enum {
    MESH_BACKEND_SCRIPTED,          //  canned model outputs from a JSON-lines file
    MESH_BACKEND_OPENAI,            //  POST {url}/v1/chat/completions
} mesh_backend_kind_t;

//  What a model answer may be, checked before and while it is parsed (backends.X.limits).
typedef struct {
    size_t max_bytes;               //  content bytes (default 65536, at most 1048576)
    int max_depth;                  //  JSON nesting (default 32, at most 64)
    size_t max_keys;                //  object keys in all (default 512, at most 4096)
    size_t max_string;              //  one string, as written (default 4096, at most 65536)
} mesh_output_limits_t;

//  backends.X.flavor: which server's wire format an openai backend speaks
//  (agents/backend/wire.h).  auto detects it once per server from its probe endpoints.
typedef enum {
    MESH_FLAVOR_AUTO,               //  detect (default)
    MESH_FLAVOR_OPENAI,             //  generic OpenAI chat completions
    MESH_FLAVOR_LLAMACPP,           //  llama.cpp llama-server
    MESH_FLAVOR_VLLM,
    MESH_FLAVOR_OLLAMA,             //  Ollama's OpenAI layer, /v1/chat/completions
    MESH_FLAVOR_OLLAMA_NATIVE,      //  Ollama's own /api/chat (NDJSON, format, keep_alive)
    MESH_FLAVOR_TGI,                //  Hugging Face text-generation-inference
    MESH_FLAVOR_COUNT_
} mesh_backend_flavor_t;

#define MESH_BACKEND_STOP_MAX   4   //  stop strings (TGI refuses more than 4)

typedef struct {
    char *name;
    mesh_backend_kind_t kind;
    char *file;                     //  scripted: the responses file
    char *url;                      //  openai: base URL, e.g. http://127.0.0.1:8080
    char *model;                    //  openai: model name sent in requests
    char *api_key_file;             //  openai: optional file holding a bearer token
    int timeout_ms;                 //  whole request deadline (default 30000)
    int connect_timeout_ms;         //  default 2000
    double temperature;             //  default 0
    bool json_schema;               //  send response_format json_schema (default true)
    mesh_output_limits_t limits;    //  what an answer may be (both kinds)
    bool allow_link_local;          //  url may name a link-local or cloud-metadata address
    mesh_budget_config_t budget;    //  tokens of every call to this backend
    //  openai only (docs/reasoning.md, "Backends"):
    mesh_backend_flavor_t flavor;   //  default auto
    bool stream;                    //  stream the answer (default true)
    int first_token_timeout_ms;     //  request sent -> first token; default 15000, <= timeout_ms
    int idle_timeout_ms;            //  between two chunks of a stream; default 10000
    int retry_attempts;             //  requests per call, the first included; 1..10, default 3
    int retry_base_ms;              //  backoff base (full jitter); default 250
    int retry_max_ms;               //  backoff cap; default 5000
    int circuit_failures;           //  consecutive failed calls that open the circuit; default 5
    int circuit_open_ms;            //  open for this long, then one probe; default 30000
    int probe_interval_s;           //  re-probe (flavour, context, structured output); default 300
    long context_tokens;            //  the server's context length; 0 = read it from the server
    char **stop;                    //  stop strings sent with every request (at most 4)
    size_t stop_count;
    bool seed;                      //  send a seed derived from the incident (default true)
    char *keep_alive;               //  ollama-native: keep_alive ("5m", "-1"); NULL = not sent
} mesh_backend_config_t;

typedef struct {
    char *kind;                     //  ewma (default), mad, cusum, seasonal, knn, ensemble
    double alpha;                   //  ewma: smoothing factor, (0,1], default 0.05
    int warmup;                     //  points per series before any score, default 30
    double threshold;               //  score in [0,1] at or above which a point is anomalous, default 0.9995
    size_t max_series;              //  bounded series table (LRU), default 10000
    int holdoff;                    //  points after a peak during which only a higher score counts; 0 = off
    struct {
        int window;                 //  points in the median window, 5..1023, default 64
    } mad;
    struct {
        double k;                   //  slack per point, in robust standard deviations, default 0.5
        double h;                   //  decision interval: the sums restart there, default 8
    } cusum;
    struct {
        int period_s;               //  length of the cycle in event time, default 86400 (a day)
        int period;                 //  or in points (> 0 overrides period_s), default 0
        int bins;                   //  phases per cycle, each with its own baseline, 2..1024, default 48
        double alpha;               //  weight of a new cycle in a phase's baseline, default 0.1
    } seasonal;
    struct {
        int window;                 //  points in a pattern, 2..64, default 8
        int memory;                 //  patterns remembered per series, 8..4096, default 128
        int k;                      //  neighbours averaged, 1..memory, default 3
    } knn;
} mesh_detector_config_t;

//  A silence written in the config (incident.silences): anomalous points whose key fields
//  satisfy every matcher are counted as silenced and open no incident while it is active,
//  by the wall clock.  See common/silence.h for the matcher syntax.
typedef struct {
    char **matchers;                //  "field=value", "field!=value", "field=~re", "field!~re"
    size_t matcher_count;
    int64_t starts_ms;              //  `starts` (RFC 3339) as epoch ms; 0 = from the start
    int64_t ends_ms;                //  `ends` (RFC 3339) as epoch ms; 0 = never ends
    char *comment;                  //  NULL when absent
} mesh_silence_config_t;

//  De-duplication, Alertmanager's model in event time (docs/incidents.md).  Durations in
//  seconds of event time.
typedef struct {
    char **group_by;                //  key fields forming the group key; default: all of them;
    size_t group_by_count;          //  [] = one group for the whole agent
    int group_wait_s;               //  a new group collects this long first; default 0
    int group_interval_s;           //  a notified group gained a series: wait; default 300
    int repeat_interval_s;          //  a notified group still firing, unchanged; default 3600
    int cooldown_s;                 //  no two incidents of a group closer, even across
                                    //  resolution; default 300
    int min_points;                 //  anomalous points a group needs ...; default 1
    int min_points_span_s;          //  ... within this span before it may fire; default 300
    int resolve_s;                  //  no anomalous point this long: resolved; default 300
    size_t max_groups;              //  bounded group table (LRU, counted); default 10000
    int persist_interval_s;         //  wall-clock seconds between state writes; default 5
    mesh_silence_config_t *silences;
    size_t silence_count;
} mesh_incident_config_t;

//  events: what one input message may cost, and the window of event time the agent
//  believes (docs/configuration.md, docs/incidents.md).
typedef struct {
    size_t max_bytes;               //  message bytes; default 1 MiB, at most 64 MiB
    int max_depth;                  //  JSON nesting; default 64, at most 2048
    int max_keys;                   //  object keys in the whole message; default 1024, at most 1000000
    int max_future_skew_s;          //  event time ahead of the wall clock; default 300, at most 86400
    int max_event_age_s;            //  event time behind it; default 0 = off, at most 31536000
    int dead_letter_timeout_ms;     //  a dead-letter copy not acknowledged by then fails;
                                    //  default 5000, 100 to 300000
} mesh_event_config_t;

typedef struct {
    char *backend;                  //  name of an entry in `backends:` (= backends[0])
    char **backends;                //  the cascade, in order: `backends:`, or {backend}
    size_t backend_count;
    double escalate_below;          //  cascade: a proposal whose confidence is below this
                                    //  goes to the next backend (0 = never; default 0)
    int deadline_ms;                //  one incident's reasoning: no model call starts and no
                                    //  retry waits past it; default 120000
    int max_steps;                  //  model calls per incident, including reasks; default 3
    int max_tokens;                 //  per call; default 256
    int incident_token_cap;         //  per incident, prompt+completion; default 4000
    long budget_tokens;             //  per agent per window; default 200000 (= budget.tokens)
    int budget_window_s;            //  default 3600 (= budget.window_s)
    mesh_budget_config_t budget;    //  the agent's scope: `budget:` or the two keys above
    bool high_priority;             //  priority: high (every incident may spend reserves)
    char **high_priority_match;     //  or incidents whose key fields satisfy all these
    size_t high_priority_match_count;   //  matchers (silence syntax) ...
    double high_priority_min_score; //  ... and whose score is at least this (0 = any)
    bool high_priority_when;        //  high_priority_when given
    int queue_size;                 //  incidents waiting for a worker; default 64
    int workers;                    //  reasoning threads; default 1
    char *overflow;                 //  queue full: "pause" the partitions (default) or "shed"
                                    //  (record the incident as shed, no reasoning)
} mesh_reason_config_t;

typedef struct {
    char *name;                     //  [a-z0-9][a-z0-9_.-]*, unique
    char **topics;
    size_t topic_count;
    char *group;                    //  consumer group; default "meshd.<name>"
    bool observe;                   //  mode: observe (shadow) runs all but the action itself
    char **key_fields;              //  event fields that form the series key
    size_t key_field_count;
    char *value_field;              //  numeric field; default "value"
    char *time_field;               //  event time: epoch seconds/ms number or RFC 3339 string; default "ts"
    mesh_detector_config_t detector;
    mesh_incident_config_t incident;
    mesh_event_config_t events;
    mesh_reason_config_t reason;
    char **actions;                 //  names of declared actions this agent may take
    size_t action_count;
    char *fallback;                 //  action taken when no proposal is accepted; must be in actions
    int replicas;                   //  agent processes in the one consumer group; default 1
    char *dead_letter_topic;        //  malformed messages go here (reason in a header); NULL = none
    char **rules;                   //  rule files (resolved paths), after the global chain
    mesh_config_pos_t *rule_pos;
    size_t rule_count;
    char *rules_hash;               //  not from the file: the archived rule set (64 hex) this
                                    //  agent runs (agents/gate.c builds it from the archive
                                    //  under state_dir/rules/); NULL = from the files above
} mesh_agent_config_t;

//  sandbox.seccomp: what a system call outside the agents' allow-list does.
typedef enum {
    MESH_SANDBOX_SECCOMP_KILL,      //  the agent dies by SIGSYS (default)
    MESH_SANDBOX_SECCOMP_LOG,       //  allowed, and logged by the kernel (for tuning the list)
    MESH_SANDBOX_SECCOMP_OFF,       //  no filter
} mesh_sandbox_seccomp_t;

//  sandbox: what each agent gives up once it has started (agents/confine.h).  The
//  capability drop, no_new_privs and the parent-death signal are not optional.
typedef struct {
    char *user;                     //  switch to this user (meshd must run as root); NULL = stay
    char *group;                    //  and this group; NULL = the user's primary group
    mesh_sandbox_seccomp_t seccomp; //  default kill
} mesh_sandbox_config_t;

//  kafka.security: how every Kafka client of meshd authenticates (common/kafka_conf.c turns
//  it into librdkafka settings).  File names are resolved paths ("credential: NAME" became
//  $CREDENTIALS_DIRECTORY/NAME); secrets themselves are never stored in the config.
typedef enum {
    MESH_KAFKA_PLAINTEXT,           //  in the order of the YAML spellings (config.c)
    MESH_KAFKA_SSL,
    MESH_KAFKA_SASL_PLAINTEXT,
    MESH_KAFKA_SASL_SSL,
} mesh_kafka_protocol_t;

typedef enum {
    MESH_SASL_NONE,
    MESH_SASL_PLAIN,
    MESH_SASL_SCRAM_SHA_256,
    MESH_SASL_SCRAM_SHA_512,
    MESH_SASL_OAUTHBEARER,          //  with librdkafka's OIDC client-credentials flow
} mesh_sasl_mechanism_t;

typedef struct {
    bool given;                     //  a security block was written
    mesh_kafka_protocol_t protocol; //  default plaintext
    char *ca_file;                  //  ssl: CA bundle; NULL = the system's default store
    char *cert_file;                //  ssl: client certificate (with key_file)
    char *key_file;                 //  ssl: client private key
    char *key_password_file;        //  ssl: file holding the key's passphrase
    bool verify_hostname;           //  ssl: broker name checked against its certificate; true
    mesh_sasl_mechanism_t mechanism;
    char *username;                 //  PLAIN, SCRAM
    char *password_file;            //  PLAIN, SCRAM: file holding the password
    bool allow_plaintext_password;  //  PLAIN over sasl_plaintext; default false
    char *token_endpoint_url;       //  OAUTHBEARER (OIDC)
    char *client_id;
    char *client_secret_file;
    char *scope;                    //  NULL = none
} mesh_kafka_security_t;

//  kafka.properties: further librdkafka settings, allow-listed and checked by librdkafka at
//  load (common/kafka_conf.h says which and why).
typedef struct {
    char *key, *value;
    mesh_config_pos_t pos;
} mesh_kafka_property_t;

//  audit.ship: the decision log produced to a Kafka topic (daemon/ship.h, docs/audit.md).
typedef struct {
    char *topic;                    //  NULL: shipping is off (the default)
    char *brokers;                  //  "host:port,..."; NULL: kafka.brokers (or the embedded one)
    int max_in_flight;              //  records produced and not yet acknowledged; default 1000
    char *source;                   //  the "source" header; default: the host name
    mesh_kafka_security_t security; //  audit.ship.security; not given: kafka.security
} mesh_ship_config_t;

//  daemon.token_sync: when a token grant is answered.
typedef enum {
    MESH_TOKEN_SYNC_BACKGROUND,     //  once in the journal (the page cache); synced right
                                    //  after by the syncer thread (default)
    MESH_TOKEN_SYNC_EACH_GRANT,     //  once the journal is synced past it (group commit)
} mesh_token_sync_t;

typedef struct {
    char *path;                     //  the file loaded (with a snapshot: the file it was taken of)
    char sha256 [65];               //  hex SHA-256 of the bytes parsed
    char *snapshot;                 //  the snapshot these bytes are in (mesh_config_snapshot, or
                                    //  the one loaded by mesh_config_load_snapshot); NULL = none
    char *bytes;                    //  the bytes parsed (what a snapshot holds)
    size_t length;
    json_t *tree;                   //  the file as JSON (every scalar a string), from the one
                                    //  parse, for comparing configs on reload
    json_t *where;                  //  {"daemon": [line, col], "agents[0].replicas": ...}: where
                                    //  each key and item of the tree is (mesh_config_where)
    //  daemon:
    char *runtime_dir;              //  sockets; default /run/meshd
    char *state_dir;                //  durable state; default /var/lib/meshd
    char *decision_log;             //  default <state_dir>/decisions.jsonl
    int heartbeat_ms;               //  agent heartbeat period; default 1000
    int liveness_timeout_ms;        //  no heartbeat for this long -> agent killed, restarted; default 10000
    int backoff_initial_ms;         //  first restart delay; default 100
    int backoff_max_ms;             //  default 30000
    int healthy_after_s;            //  up this long -> backoff resets; default 60
    int restart_intensity;          //  more than this many restarts ...; default 5
    int restart_period_s;           //  ... within this many seconds -> agent marked failed; default 60
    int quarantine_after;           //  deaths while handling one message -> quarantined; default 3
    int drain_timeout_ms;           //  on stop, how long agents may take to drain; default 10000
    char *agent_binary;             //  default: mesh-agent beside the meshd binary
    mesh_token_sync_t token_sync;   //  when a grant is answered (daemon/tokens.h)
    char *operator_group;           //  daemon.operator_group: may change meshd's state over
                                    //  control.ipc (reload, pause, approve, ...); NULL: only
                                    //  root and meshd's own user
    //  kafka:
    char *brokers;                  //  "host:port,..." or "embedded"
    bool embedded;                  //  brokers == "embedded": meshd runs librdkafka's mock cluster
    int embedded_partitions;        //  partitions of each topic the embedded broker creates; default 4
    char **embedded_topics;         //  topics created at start
    size_t embedded_topic_count;
    int session_timeout_ms;         //  consumer group session timeout; default 10000
    int commit_interval_ms;         //  auto-commit of stored offsets; default 1000
    int prefetch_messages;          //  librdkafka queued.min.messages; MESH_PREFETCH_DEFAULT
    mesh_kafka_security_t kafka_security;
    mesh_kafka_property_t *kafka_properties;
    size_t kafka_property_count;
    //  gates:
    long lua_instructions;          //  per rule evaluation; default 1000000
    size_t lua_memory;              //  bytes per rule state; default 8 MiB
    int lua_time_ms;                //  wall clock per rule evaluation; default 50
    char **global_rules;            //  applied to every agent, before its own
    mesh_config_pos_t *global_rule_pos;
    size_t global_rule_count;
    mesh_backend_config_t *backends;
    size_t backend_count;
    mesh_action_spec_t *actions;
    size_t action_count;
    mesh_agent_config_t *agents;
    size_t agent_count;
    //  sandbox:
    mesh_sandbox_config_t sandbox;
    //  budget: the whole daemon's tokens (tokens 0: no limit)
    mesh_budget_config_t budget;
    //  audit.ship:
    mesh_ship_config_t ship;
    //  audit: signed checkpoints of the decision log (audit/note.h, docs/audit.md)
    int checkpoint_interval_s;      //  sign one this often when the log grew (default 60);
                                    //  0: only at a clean stop and on `meshctl audit checkpoint`
    char *signing_key;              //  the signer key file (`meshctl audit keygen`); default
                                    //  <state_dir>/audit-signing.key, made at first start;
                                    //  the credential audit-signing comes first
    char *origin;                   //  the checkpoints' origin line; default "<host name>/meshd"
    //  audit.rotate: seal the active log into a segment (docs/audit.md "Segments and
    //  retention") when it holds this many bytes (default 256 MiB; 0: never) or its first
    //  record is this old (default 0: never)
    size_t rotate_max_bytes;
    int rotate_max_age_s;
    //  audit.retain: remove the oldest sealed segments once older than max_age_days, or
    //  while the log's files hold more than max_bytes (defaults 0: keep everything)
    int retain_max_age_days;
    size_t retain_max_bytes;
    //  http: meshd's HTTP listener (/metrics, /healthz, /readyz, the status page); off by default
    bool http_listen;               //  http.listen; default false
    char *http_address;             //  http.address: an IPv4 or IPv6 literal; default 127.0.0.1
    int http_port;                  //  http.port; default 9464
    int http_max_connections;       //  http.max_connections: at once, in all; default 32
    int http_max_connections_per_ip;    //  http.max_connections_per_ip; default 8
    int http_timeout_s;             //  http.timeout_s: an idle connection is closed; default 10
    size_t http_max_request_bytes;  //  http.max_request_bytes: request line and headers; default 8192
} mesh_config_t;

//  Load and validate PATH.  Returns the number of problems found; each is printed
//  to ERR (may be NULL) as one "FILE:LINE:COL: message" line.  On 0, *config_p is
//  set and the caller owns it; otherwise *config_p is NULL.
int mesh_config_load (const char *path, mesh_config_t **config_p, FILE *err);

//  Load the snapshot SNAPSHOT of the config ORIGIN (mesh_config_snapshot wrote it): its
//  bytes must hash to SHA256 (64 hex), else nothing is parsed.  Messages and relative
//  paths are as for ORIGIN; rule files are not checked on disk (an agent that runs a
//  snapshot builds its rules from the archive, see rules_hash).  Returns as
//  mesh_config_load; on 0, (*config_p)->snapshot is SNAPSHOT.
int mesh_config_load_snapshot (const char *origin, const char *snapshot, const char *sha256,
                               mesh_config_t **config_p, FILE *err);

//  Write the bytes SELF was parsed from to DIR/config-<sha256>.yaml (mode 0600, written
//  to a temporary file, fsync'd and renamed, so it is complete or absent; an existing one
//  is kept: its name is the hash of its content) and set self->snapshot.  0, or -1 with
//  the reason logged.
int mesh_config_snapshot (mesh_config_t *self, const char *dir);

//  Where key path PATH ("daemon", "agents[1].replicas", "gates.rules[0]") is in the file;
//  {0, 0} when it is not there.
mesh_config_pos_t mesh_config_where (const mesh_config_t *self, const char *path);

//  The StrictModes check (as sshd's) of a file the config names or is: PATH is resolved
//  (symlinks followed) and the target must be a regular file, owned by root or the
//  effective user, not writable by group or others; so must the directory holding it,
//  and the one holding PATH itself; directories above them must be owned by root or the
//  effective user and not writable by group or others unless sticky (as /tmp).  NULL if
//  PATH can be trusted, else what is wrong and how to fix it, in WHY.
const char *mesh_config_check_trust (const char *path, char *why, size_t size);

//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_config_destroy (mesh_config_t **self_p);

//  A flavour's name as written in the config ("auto", "ollama-native", ...); "unknown"
//  for a value outside the enum.  Static, never NULL.
const char *mesh_config_flavor_name (mesh_backend_flavor_t flavor);
//  An action kind's name as written in the config ("log", "kafka", "exec", "webhook");
//  "unknown" for a value outside the enum.  Static, never NULL.
const char *mesh_config_action_kind_name (mesh_action_kind_t kind);
//  A parameter type's name ("string", "integer", "number", "boolean").
const char *mesh_config_param_type_name (mesh_param_type_t type);
//  A bound of a parameter as JSON: integer params keep integer bounds (1, not 1.0).
json_t *mesh_config_bound_json (mesh_param_type_t type, double value);
//  A declared parameter as rules see it in ctx.action.params and the prompt shows it:
//  {type, required, max_length?, pattern?, enum?, min?, max?, allow_dash?} (allow_dash
//  only when true).  Caller owns.
json_t *mesh_config_param_json (const mesh_param_spec_t *param);

//  Lookups (borrowed pointers, NULL when absent).
const mesh_agent_config_t *mesh_config_agent (const mesh_config_t *self, const char *name);
const mesh_backend_config_t *mesh_config_backend (const mesh_config_t *self, const char *name);
//  Fill LIMITS with the documented defaults (what an absent backends.X.limits means).
void mesh_config_output_limits_default (mesh_output_limits_t *limits);
const mesh_action_spec_t *mesh_config_action (const mesh_config_t *self, const char *name);

#endif
