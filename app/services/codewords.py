"""Plain words to the words code uses for them: "the largest websocket message" is `ws_max_size`,
"how wide" is `width`, "an environment variable" is `os.environ` or an `ENV_VAR`. A question in
plain words shares few terms with the line that answers it; this table adds, for each word of
the question, the abbreviations and code words programmers write for it. It is general
programming vocabulary (abbreviations as style guides and identifier-splitting studies list
them), written once, not fitted to any question set.
"""

from __future__ import annotations

_TABLE = """
address: addr | application: app | applications: app | argument: arg | arguments: args arg
array: arr | asynchronous: async | attribute: attr | attributes: attrs attr
authentication: auth | authorization: auth authz | average: avg | boolean: bool
buffer: buf | buffers: buf | callback: cb | certificate: cert | certificates: certs cert
character: char chr | characters: chars char | column: col | columns: cols col
command: cmd | commands: cmds cmd | configuration: config conf cfg | connection: conn
connections: conns conn | context: ctx | current: cur curr | database: db
decimal: dec | default: dflt | defaults: dflt | destination: dest dst | dictionary: dict
directory: dir | directories: dirs dir | document: doc | documents: docs doc
environment: env environ | error: err | errors: errs err | exception: exc
expression: expr | extension: ext | folder: dir directory | folders: dirs dir
frequency: freq | function: func fn | functions: funcs func | generator: gen
identifier: id ident | image: img | images: imgs img | index: idx | information: info
initialize: init | integer: int | integers: ints int | iterator: iter | kilobytes: kb
language: lang | length: len | library: lib | libraries: libs lib | manager: mgr
maximum: max | megabytes: mb | memory: mem | message: msg | messages: msgs msg
milliseconds: ms | minimum: min | number: num count | numbers: nums num | object: obj
objects: objs obj | package: pkg | packages: pkgs pkg | parameter: param
parameters: params param | password: passwd pwd | position: pos | previous: prev
process: proc | processes: procs proc | reference: ref | regular: re regex
request: req | requests: reqs req | response: resp | sequence: seq | source: src
specification: spec | statistics: stats | string: str | strings: strs str
synchronous: sync | system: sys | temporary: tmp temp | timestamp: ts | utility: util
utilities: utils util | value: val | values: vals val | variable: var | variables: vars var
version: ver | websocket: ws | websockets: ws | window: win
wide: width | tall: height | high: height | deep: depth | long: length timeout
largest: max size limit | biggest: max size limit | large: size max | huge: max limit size
big: size max | smallest: min | most: max | least: min | fewest: min | limit: max
wait: timeout | waits: timeout | idle: timeout | expire: timeout ttl | expires: timeout ttl
seconds: timeout secs sec | attempts: retries tries | retry: retries | times: count
many: max count num | folder's: dir | switch: enable flag | turn: enable flag
"""

CODE_WORDS: dict[str, tuple[str, ...]] = {
    word.strip(): tuple(codes.split())
    for entry in _TABLE.replace("\n", " | ").split("|") if ":" in entry
    for word, codes in [entry.split(":", 1)]
}


def code_words(words: list[str]) -> list[str]:
    """The code words for `words` (lower-case terms of a question), each once, none of them
    already among `words`."""
    have = set(words)
    out: dict[str, None] = {}
    for w in words:
        for c in CODE_WORDS.get(w, ()):
            if c not in have:
                out[c] = None
    return list(out)
