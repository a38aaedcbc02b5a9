/*  kafka_conf - the librdkafka configuration every Kafka client of meshd starts from.
 *
 *  One place turns kafka.security and kafka.properties into librdkafka settings, so
 *  the consumer, the dead-letter producer and the action producer authenticate alike.
 *  Secrets are read from their files when a conf is built, handed to librdkafka and
 *  wiped; they never reach a log line, an error text, argv or the config struct.  The
 *  allow-list of kafka.properties and the throwaway-conf check live here too, so the
 *  config loader can refuse at load time what a client would refuse at start.
 */
#ifndef MESH_KAFKA_CONF_H
#define MESH_KAFKA_CONF_H

#include "config.h"
#include <librdkafka/rdkafka.h>

//  Secret files (passwords, client secret) larger than this are refused: a secret is a
//  line, and a huge file is a mistake (a key file, a log) that must not be sent anywhere.
#define MESH_KAFKA_SECRET_MAX 4096

//  The environment variable through which the agents meshd spawns learn the embedded
//  broker's incarnation (daemon/broker.c sets it, agents/event/event_kafka.c reads it).
#define MESH_BROKER_INCARNATION_ENV "MESHD_BROKER_INCARNATION"

//  A new conf for one client (consumer or producer) of BROKERS: bootstrap.servers, every
//  security setting of CFG (secrets read from their files now, set, wiped) and every
//  kafka.properties entry.  The caller adds its own settings and owns the conf.  NULL with
//  *ERR set (caller frees; it names the setting or file, never a secret's value).
rd_kafka_conf_t *mesh_kafka_conf_new (const mesh_config_t *cfg, const char *brokers,
                                      char **err);

//  The same with SECURITY instead of kafka.security (audit.ship.security: the log may be
//  shipped to another cluster); kafka.properties apply all the same.
rd_kafka_conf_t *mesh_kafka_conf_new_with (const mesh_config_t *cfg,
                                           const mesh_kafka_security_t *security,
                                           const char *brokers, char **err);

//  NULL if KEY may be set through kafka.properties; otherwise why not (static text that
//  says what to do instead).  See the allow-list in kafka_conf.c.
const char *mesh_kafka_conf_refusal (const char *key);

//  The allow-list itself, NULL-terminated (for documentation and tests).
const char *const *mesh_kafka_conf_allowed (void);

//  0 if this build of librdkafka accepts KEY = VALUE (set into a throwaway conf); else -1
//  with librdkafka's words in WHY.  For settings that are not secret only: librdkafka may
//  repeat VALUE in WHY.
int mesh_kafka_conf_try (const char *key, const char *value, char *why, size_t size);

//  librdkafka's spelling of a protocol ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
//  and of a mechanism ("PLAIN", ..., NULL for none).
const char *mesh_kafka_conf_protocol_name (mesh_kafka_protocol_t protocol);
const char *mesh_kafka_conf_mechanism_name (mesh_sasl_mechanism_t mechanism);

#endif
