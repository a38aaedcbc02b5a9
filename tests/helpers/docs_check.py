#!/usr/bin/env python3
"""docs_check - the docs name only what exists, and their marked examples run.

    docs_check.py BUILD_DIR [FILE...]      (run from the repository root)

Checks README.md, docs/*.md and docs/man/* (or the FILEs given):

1. meshctl commands: every `meshctl [options] COMMAND [SUBCOMMAND]` in a markdown code
   span or fenced block, in a bold run of a man page, and every command entry of
   meshctl(1) must be a command (and subcommand) that `meshctl --help` lists.
2. config keys: every dotted key in a markdown code span whose first word is a
   top-level key (`daemon.runtime_dir`, `agents[0].reason.backend`, `backends.llm.url`)
   must be one `meshd --list-config-keys` prints (a name chosen by the operator
   matches `<name>`; an index matches `[]`; below a key without listed children, e.g.
   kafka.properties, anything goes).
3. meshd.yaml(5) documents every key of `meshd --list-config-keys`: within the entry
   of the key's top-level section (`.TP` then `.B daemon`), each word of its path is
   in bold.
4. examples: every line of a fenced block opened with ```sh doc-test is run with
   bash from the repository root, BUILD_DIR first on PATH; each must exit 0 within
   60 s.  Only commands that are safe anywhere belong there (no daemon, no root,
   nothing written outside a temporary directory).

Every problem is printed as FILE:LINE: what is wrong, and what to do; exit 1 if any.
"""
import glob
import os
import re
import subprocess
import sys

problems = []
checked = {"commands": 0, "keys": 0}


def problem(path, line, text):
    problems.append("%s:%d: %s" % (path, line, text))


def run(argv):
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=60)
    return out.stdout


# --- what exists -------------------------------------------------------------------

def meshctl_commands(build):
    """{command: set of subcommands (empty: takes none)}, and the options taking a value."""
    text = run([os.path.join(build, "meshctl"), "--help"])
    commands, valued = {}, {"--config", "--log", "--labels", "--state-dir"}
    for option in re.findall(r"(--[a-z][a-z-]*)[ =][A-Z][A-Z_]*\b", text):
        valued.add(option)
    for line in text.splitlines():
        m = re.match(r"  ([a-z][a-z-]*)(.*)", line)
        if not m or m.group(1).endswith(":") or m.group(2).startswith(":"):
            continue
        command = m.group(1)
        subs = commands.setdefault(command, set())
        syntax = re.split(r"\s{2,}", line.strip())[0]     #  the description follows a gap
        for i, segment in enumerate(re.split(r"\s\|\s", syntax)):
            words = segment.split()
            if i > 0 and words and words[0] == command:
                words = words[1:]
            elif i == 0:
                words = words[1:]
            if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                subs.add(words[0])
    if not commands:
        sys.exit("docs_check: `meshctl --help` listed no command:\n" + text)
    return commands, valued


def config_keys(build):
    keys = run([os.path.join(build, "meshd"), "--list-config-keys"]).split()
    if len(keys) < 50:
        sys.exit("docs_check: `meshd --list-config-keys` printed %d keys" % len(keys))
    return keys


def split_key(key):
    """'agents[].incident.silences[].matchers' -> ['agents', 'incident', 'silences', 'matchers'];
    '<name>' components stay."""
    return [part for part in key.replace("[]", "").split(".") if part]


# --- reading the docs --------------------------------------------------------------

FENCE = re.compile(r"^\s*```(.*)$")


def markdown_code(path):
    """(line, text, fence_info) for every code span and every fenced block line."""
    out, fence = [], None
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        m = FENCE.match(line)
        if m:
            fence = None if fence is not None else m.group(1).strip()
            continue
        if fence is not None:
            out.append((n, line.rstrip("\n"), fence))
            continue
        for span in re.findall(r"`([^`]+)`", line):
            out.append((n, span, None))
    return out


def roff_args(text):
    args = []
    for m in re.finditer(r'"((?:[^"]|"")*)"|(\S+)', text):
        args.append(m.group(1) if m.group(1) is not None else m.group(2))
    return args


def roff_plain(text):
    return re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\c", "", text).replace("\\-", "-").replace("\\e", "\\")


def roff_bold(line):
    """The bold runs of one man page line (macro arguments and \\fB...\\fR)."""
    runs = []
    m = re.match(r"^\.(B|BR|BI|RB|IB)\s+(.*)$", line)
    if m:
        args = roff_args(m.group(2))
        macro = m.group(1)
        if macro == "B":
            runs.append(" ".join(args))
        else:
            first_bold = macro[0] == "B"
            runs += [a for i, a in enumerate(args) if (i % 2 == 0) == first_bold]
    runs += re.findall(r"\\fB(.*?)(?:\\f[RIP]|$)", line)
    return [roff_plain(r) for r in runs]


def doc_files(args):
    if args:
        return args
    return ["README.md"] + sorted(glob.glob("docs/*.md")) + sorted(glob.glob("docs/man/*.[0-9]"))


# --- 1. meshctl commands ---------------------------------------------------------------

def check_command(path, n, words, commands, valued, where):
    """WORDS follow `meshctl`: options, then a command and maybe a subcommand."""
    i = 0
    while i < len(words) and words[i].startswith("-"):
        option = words[i].split("=")[0]
        if option in ("--help", "-h", "--version", "-V"):
            return
        i += 2 if option in valued and "=" not in words[i] else 1
    if i >= len(words):
        return
    command = words[i]
    if not re.fullmatch(r"[a-z][a-z-]*", command):
        return                          #  a placeholder (COMMAND) or punctuation
    checked["commands"] += 1
    if command not in commands:
        problem(path, n, "meshctl %s: no such meshctl command (%s; `meshctl --help` lists: %s)"
                % (command, where, ", ".join(sorted(commands))))
        return
    subs = commands[command]
    if subs and i + 1 < len(words) and re.fullmatch(r"[a-z][a-z-]*", words[i + 1]) \
            and words[i + 1] not in subs:
        problem(path, n, "meshctl %s %s: no such subcommand (%s; meshctl %s has: %s)"
                % (command, words[i + 1], where, command, ", ".join(sorted(subs))))


def meshctl_mentions(text):
    for m in re.finditer(r"(?:^|[\s$(`'\"/])meshctl((?:\s+[^\s|;&)`'\"]+){0,6})", text):
        yield m.group(1).split()


def check_commands(path, commands, valued):
    if path.endswith(".md"):
        for n, text, fence in markdown_code(path):
            if fence is not None and fence.split()[0:1] not in ([], ["sh"], ["bash"], ["console"],
                                                                 ["shell"], ["text"]):
                continue
            for words in meshctl_mentions(text):
                check_command(path, n, words, commands, valued, "in code")
        return
    lines = open(path, encoding="utf-8").read().split("\n")
    for n, line in enumerate(lines, 1):
        for run_ in roff_bold(line):
            for words in meshctl_mentions(" " + run_):
                check_command(path, n, words, commands, valued, "in bold")
    if os.path.basename(path) == "meshctl.1":
        #  The entries of COMMANDS: .TP, then the command in bold.
        section = None
        for n, line in enumerate(lines, 1):
            if line.startswith(".SH"):
                section = line[3:].strip().strip('"')
            if section == "COMMANDS" and n > 1 and lines[n - 2].strip() == ".TP":
                runs = roff_bold(line)
                if runs:
                    check_command(path, n, runs[0].split(), commands, valued, "a COMMANDS entry")


# --- 2. config keys named in the docs ----------------------------------------------

def key_tree(keys):
    tree = {}
    for key in keys:
        node = tree
        for part in split_key(key):
            node = node.setdefault(part, {})
    return tree


def resolve(tree, parts):
    """None if PARTS names a key, else the first part that does not."""
    node = tree
    for part in parts:
        if not node:
            return None                 #  below a key without children: its value
        if part in node:
            node = node[part]
        elif "<name>" in node and re.fullmatch(r"[A-Za-z0-9_<>*-]+", part):
            node = node["<name>"]
        else:
            return part
    return None


KEYISH = re.compile(r"^([a-z_]+)((?:\[[0-9A-Za-z]*\])?(?:\.[A-Za-z0-9_<>*-]+(?:\[[0-9A-Za-z]*\])?)+)$")
FILEISH = re.compile(r"\.(md|lua|c|h|sh|py|yaml|yml|json|jsonl|key|ipc|log|txt|service|conf|[0-9])$")


def check_keys_named(path, keys, tree):
    if not path.endswith(".md"):
        return
    top = set(tree)
    for n, text, fence in markdown_code(path):
        if fence is not None:
            continue
        token = text.strip()
        token = re.sub(r"\s*[:=].*$", "", token)   #  `key: value`
        m = KEYISH.match(token)
        if not m or m.group(1) not in top or FILEISH.search(token):
            continue
        parts = [p for p in re.sub(r"\[[^\]]*\]", "", token).split(".") if p]
        checked["keys"] += 1
        bad = resolve(tree, parts)
        if bad is not None:
            problem(path, n, "`%s`: not a config key ('%s' is not accepted there; "
                    "`meshd --list-config-keys` lists every key)" % (token, bad))


# --- 3. meshd.yaml(5) documents every key ------------------------------------------

def check_man_keys(path, keys):
    """Each key of --list-config-keys is in meshd.yaml(5): every word of its path in bold
    in the entry of its top-level section, or the part below a block that has the same
    keys as another block documented in full and named there in bold (as
    "the keys of \\fBkafka.security\\fR")."""
    lines = open(path, encoding="utf-8").read().split("\n")
    sections, current = {}, None
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            current = None
        if i > 0 and lines[i - 1].strip() == ".TP":
            runs = roff_bold(line)
            first = runs[0].split()[0] if runs and runs[0].split() else ""
            if re.fullmatch(r"[a-z_]+(\.[a-z_]+)*:?", first):
                current = first.rstrip(":").split(".")[0]
                sections.setdefault(current, set())
        if current:
            for run_ in roff_bold(line):
                sections[current].update(re.findall(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*", run_))
                sections[current].update(re.findall(r"[a-z_][a-z0-9_]*", run_))
    tree = key_tree(keys)

    def subtree(parts):
        node = tree
        for part in parts:
            node = node.get(part, {})
        return node

    def plain(parts):
        return [p for p in parts if p != "<name>"]

    def documented(parts):
        words = sections.get(parts[0])
        if words is None:
            return "no section '.TP' '.B %s'" % parts[0]
        absent = [p for p in plain(parts[1:]) if p not in words]
        if not absent:
            return None
        #  Below a block with the same keys as another one named in bold here.
        for cut in range(len(parts) - 1, 0, -1):
            block = subtree(parts[:cut])
            if not block or any(p not in words for p in plain(parts[1:cut])):
                continue
            for other in keys:
                other_parts = split_key(other)
                name = ".".join(plain(other_parts))
                if other_parts != parts[:cut] and name in words \
                        and subtree(other_parts) == block \
                        and documented(other_parts + parts[cut:]) is None:
                    return None
        return "%s not in bold in section %s" % (", ".join(absent), parts[0])

    for key in keys:
        why = documented(split_key(key))
        if why:
            problem(path, 1, "config key %s is not documented (%s): add it, in bold, with its "
                    "default and range" % (key, why))


# --- 4. the marked examples --------------------------------------------------------

def run_examples(path, build):
    if not path.endswith(".md"):
        return 0
    ran = 0
    env = dict(os.environ, PATH=os.path.abspath(build) + os.pathsep + os.environ.get("PATH", ""))
    for n, text, fence in markdown_code(path):
        if fence != "sh doc-test":
            continue
        command = re.sub(r"\s+#.*$", "", text).strip()
        if not command or command.startswith("#"):
            continue
        ran += 1
        try:
            out = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=env, timeout=60)
            if out.returncode != 0:
                problem(path, n, "example `%s` exited %d:\n%s" % (command, out.returncode,
                                                                   out.stdout[-2000:]))
        except subprocess.TimeoutExpired:
            problem(path, n, "example `%s` did not end within 60 s" % command)
    return ran


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    commands, valued = meshctl_commands(build)
    keys = config_keys(build)
    tree = key_tree(keys)
    files = doc_files(sys.argv[2:])
    examples = 0
    for path in files:
        check_commands(path, commands, valued)
        check_keys_named(path, keys, tree)
        examples += run_examples(path, build)
        if os.path.basename(path) == "meshd.yaml.5":
            check_man_keys(path, keys)
    for line in problems:
        print(line)
    print("docs_check: %d files; %d mentions of meshctl commands and %d of config keys "
          "checked against %d commands and %d keys; %d examples run: %s"
          % (len(files), checked["commands"], checked["keys"], len(commands), len(keys), examples,
             "%d problems" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
