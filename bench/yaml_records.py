"""YAML files: is the one record a question asks about kept?

Material: real YAML files of public repositories at recorded commits, stored gzipped
under `bench/data/yaml/` (SOURCES.md there lists them; `make_sources.py` rebuilds them):
docker compose files, GitHub Actions workflows, a pre-commit hook manifest, Kubernetes
manifests (one multi-document release file, and a repository's example manifests joined
into one stream) and an OpenAPI description. 2k-11k o200k tokens each.

Split by repository and by kind of file, so that no kind is in both:

- dev: compose files of getsentry/self-hosted and open-telemetry/opentelemetry-demo, two
  workflows of pydantic/pydantic, the hook manifest of pre-commit/pre-commit-hooks;
- test: Kubernetes manifests of GoogleCloudPlatform/microservices-demo and of
  kubernetes/examples, the OpenAPI description of swagger-api/swagger-petstore.

A case is one file followed by one question in plain words about ONE record (a compose
service, a workflow job or step, a hook, a Kubernetes object, an API operation or
schema), e.g. "Which image does the web service run?". The record is drawn with a seeded
RNG among those lying wholly between 10% and 90% of the file, so neither truncation nor
the question's position gives it away; each file yields up to `PER_DOCUMENT` cases, each
about a different record and question, the question type drawn at random among those
whose member the record has.

`checks` are verbatim slices of the file: the record's identifying member and the asked
member, each as written there from its key to the end of its value (a nested value
spans its lines and indentation). Offsets come from PyYAML's parser events (this
module's own small composer, not the package's). A check must prove that the asked
record was kept: every occurrence of it in the prompt must lie inside that record. A
member that repeats elsewhere (`restart: unless-stopped`, `runs-on: ubuntu-latest`) is
widened to the shortest slice, from it or a sibling or ancestor before it (within the
record) to it or a sibling after it, that proves the record; a record keyed by a name
(`web:` under `services:`) is identified by its key's line, widened through its first
members if need be. A check longer than `record_cases.MAX_CHECK` characters, or one that no widening
makes provable, makes the question type unusable for that record, and another is tried;
a check contained in another is dropped.
"""

from pathlib import Path

import yaml

from bench import record_cases
from bench.record_cases import Member, Node, Record, objects, proves
from bench.tasks import TaskCase

DATA = Path(__file__).resolve().parent / "data" / "yaml"
PER_DOCUMENT = 8

# --- a YAML composer that keeps offsets -------------------------------------------------


def parse_documents(text: str) -> list[Node]:
    """Every document's root node, offsets from the parser's events (aliases are left
    as the scalars `*name`; a block collection ends where its last value ends)."""
    documents, stack = [], []  # stack: [node, pending key (start, text) | None, flow]
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        start, end = event.start_mark.index, event.end_mark.index
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            kind = "object" if isinstance(event, yaml.MappingStartEvent) else "array"
            stack.append([Node(kind, start, start), None, bool(event.flow_style)])
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            node, _, flow = stack.pop()
            children = [m.node for m in node.members] or node.items
            node.end = end if flow else (children[-1].end if children else node.start)
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            node = Node("scalar", start, end, getattr(event, "value", None))
        else:
            continue
        if not stack:
            documents.append(node)
            continue
        frame = stack[-1]
        parent = frame[0]
        if parent.kind == "array":
            parent.items.append(node)
        elif frame[1] is None:
            frame[1] = (node.start, node.value if node.kind == "scalar" else None)
        else:
            key_start, key = frame[1]
            frame[1] = None
            parent.members.append(Member(str(key), key_start, node, parent.members,
                                         len(parent.members)))
    for document in documents:
        _link(document, None)
    return documents


def _link(node: Node, owner: Member | None) -> None:
    """Set each member's parent: the member whose value holds its mapping."""
    for member in node.members:
        member.parent = owner
        _link(member.node, member)
    for item in node.items:
        _link(item, owner)


# --- records and questions --------------------------------------------------------------


def _compose(roots):
    services = roots[0].get("services")
    for member in services.node.members if services else ():
        if member.node.kind == "object":
            yield Record(member.node, f"the {member.key} service", keyed=member)


def _workflow(roots):
    jobs = roots[0].get("jobs")
    for job in jobs.node.members if jobs else ():
        if job.node.kind != "object":
            continue
        yield Record(job.node, f"the {job.key} job", keyed=job)
        steps = job.node.get("steps")
        for step in objects(steps.node.items) if steps and steps.node.kind == "array" else ():
            name = step.get("name")
            if name is not None and name.node.kind == "scalar":
                yield Record(step, f"the step '{name.node.value}' of the {job.key} job",
                             ids=("name",))


def _hooks(roots):
    for node in objects(roots[0].items):
        yield Record(node, f"the {node.get('id').node.value} hook", ids=("id",))


def _manifests(roots):
    for node in objects(roots):
        kind, name = node.get("kind"), node.get("metadata.name")
        if kind is not None and name is not None:
            yield Record(node, f"the {kind.node.value} {name.node.value}",
                         ids=("metadata.name",))


def _openapi(roots):
    paths = roots[0].get("paths")
    for path in paths.node.members if paths else ():
        for operation in path.node.members if path.node.kind == "object" else ():
            if operation.node.kind == "object":
                yield Record(operation.node, f"the {operation.key.upper()} {path.key} endpoint",
                             ids=("operationId",), keyed=operation)
    schemas = roots[0].get("components.schemas")
    for schema in schemas.node.members if schemas else ():
        if schema.node.kind == "object":
            yield Record(schema.node, f"the {schema.key} schema", keyed=schema)


CONTAINER = "spec.template.spec.containers.0"
# (question, asked member paths); "{x}" is the record's label
COMPOSE = [("Which image does {x} run?", ("image",)),
           ("Which container image is {x} built from?", ("image",)),
           ("What command does {x} start with?", ("command",)),
           ("Which services must be up before {x} starts?", ("depends_on",)),
           ("What ports does {x} publish?", ("ports",)),
           ("Which volumes are mounted into {x}?", ("volumes",)),
           ("How is the health of {x} checked?", ("healthcheck",)),
           ("What environment variables does {x} get?", ("environment",)),
           ("What is the restart policy of {x}?", ("restart",)),
           ("What is the entrypoint of {x}?", ("entrypoint",)),
           ("How much memory may {x} use?", ("deploy",)),
           ("Where is the Dockerfile of {x}?", ("build",))]
WORKFLOW = [("Which runner does {x} run on?", ("runs-on",)),
            ("Which jobs must finish before {x} runs?", ("needs",)),
            ("Under what condition does {x} run?", ("if",)),
            ("What is the build matrix of {x}?", ("strategy",)),
            ("How many minutes may {x} take?", ("timeout-minutes",)),
            ("Which environment variables does {x} set?", ("env",)),
            ("Which action does {x} use?", ("uses",)),
            ("What shell command does {x} execute?", ("run",)),
            ("With what inputs is the action of {x} called?", ("with",))]
HOOKS = [("What command does {x} run?", ("entry",)),
         ("In which language is {x} implemented?", ("language",)),
         ("Which file types does {x} look at?", ("types",)),
         ("What does {x} do, in a sentence?", ("description",)),
         ("At which git stages does {x} run?", ("stages",)),
         ("Which files does {x} match?", ("files",))]
MANIFESTS = [("Which container image does {x} run?", (f"{CONTAINER}.image",)),
             ("How much CPU and memory does {x} request?", (f"{CONTAINER}.resources",)),
             ("Which ports does the container of {x} listen on?", (f"{CONTAINER}.ports",)),
             ("Which environment variables does {x} set?", (f"{CONTAINER}.env",)),
             ("How is the readiness of {x} probed?", (f"{CONTAINER}.readinessProbe",)),
             ("How many replicas does {x} ask for?", ("spec.replicas",)),
             ("Which ports does {x} expose?", ("spec.ports",)),
             ("Which pods does {x} select?", ("spec.selector",)),
             ("What type is {x}?", ("spec.type",)),
             ("Which labels does {x} carry?", ("metadata.labels",)),
             ("What rules does {x} define?", ("spec.rules",)),
             ("How much storage does {x} claim?", ("spec.resources",)),
             ("Which metrics scale {x}?", ("spec.metrics",))]
OPENAPI = [("What parameters does {x} take?", ("parameters",)),
           ("What does {x} answer when it succeeds?", ("responses.200",)),
           ("What does {x} do, in short?", ("summary",)),
           ("What request body does {x} expect?", ("requestBody",)),
           ("Which permissions does {x} need?", ("security",)),
           ("Which properties does {x} have?", ("properties",)),
           ("Which fields of {x} are required?", ("required",)),
           ("What XML element name does {x} use?", ("xml",))]

KINDS = {  # file-name part: (records, questions)
    "compose": (_compose, COMPOSE),
    "actions": (_workflow, WORKFLOW),
    "hooks": (_hooks, HOOKS),
    "k8s": (_manifests, MANIFESTS),
    "openapi": (_openapi, OPENAPI),
}


# --- checks -----------------------------------------------------------------------------


def _member_check(text: str, member: Member, record: Record):
    """The member's text, or the shortest widening of it that proves the record."""
    siblings, i = member.siblings, member.index
    starts, ends = [member.start], [member.end]
    starts += [siblings[j].start for j in (i - 1, i - 2) if j >= 0]
    ends += [siblings[j].end for j in (i + 1, i + 2) if j < len(siblings)]
    ancestor = member.parent
    while ancestor is not None and ancestor.start >= record.start:
        starts.append(ancestor.start)
        starts += [ancestor.siblings[j].start for j in (ancestor.index - 1, ancestor.index - 2)
                   if j >= 0]
        ancestor = ancestor.parent
    runs = sorted({text[s:e] for s in starts for e in ends if s < e}, key=len)
    return next((run for run in runs if proves(text, run, record)), None)


# --- cases (`bench.record_cases`) --------------------------------------------------------

FORMAT = record_cases.Format(
    "yaml", DATA, KINDS, lambda doc, name: parse_documents(doc),
    lambda text, record: text.find("\n", record.keyed.start),  # a keyed record: its key's line
    _member_check, per_document=PER_DOCUMENT)


def _kind(path: Path):
    return next(value for part, value in KINDS.items() if f"-{part}-" in path.name)


def cases(split: str, seed: int = 0) -> list[TaskCase]:
    """Up to PER_DOCUMENT cases per document of the split, the same for the same seed."""
    return [case for path in FORMAT.documents(split)
            for case in FORMAT.document_cases(path, seed, _kind(path))]


if __name__ == "__main__":
    import sys

    record_cases.show(cases, sys.argv[1:])
