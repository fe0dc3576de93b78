"""Checks on `terraform/` that run offline.

`terraform fmt` and `terraform providers` need no provider plugins, so they
run whenever the terraform binary is installed. `terraform validate` needs the
google, google-beta and archive plugins, which only `terraform init` can fetch
from the registry; these tests never download anything, so validate runs only
where a developer already initialised the folder. The static checks below read
the .tf files with a small HCL reader and cover what validate would not:
described and typed inputs, the environment contract with the product, and
the audience that the push subscription and the function must share.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TF_DIR = REPO_ROOT / "terraform"
TERRAFORM = shutil.which("terraform")

needs_terraform = pytest.mark.skipif(
    TERRAFORM is None, reason="terraform binary not on PATH (fmt/providers checks)"
)

CONCERN_FILES = (
    "versions.tf",
    "variables.tf",
    "outputs.tf",
    "apis.tf",
    "pubsub.tf",
    "tasks.tf",
    "functions.tf",
    "scheduler.tf",
    "firestore.tf",
    "iam.tf",
    "monitoring.tf",
)

# The environment the product reads; functions.tf must set exactly these.
COMMON_ENV = (
    "INBOXSYNC_PROJECT",
    "INBOXSYNC_FIRESTORE_DATABASE",
    "INBOXSYNC_LOG_LEVEL",
)
RECEIVE_PUSH_ENV = (
    "INBOXSYNC_PUSH_AUDIENCE",
    "INBOXSYNC_PUSH_ALLOWED_EMAILS",
    "INBOXSYNC_TASKS_LOCATION",
    "INBOXSYNC_TASKS_QUEUE",
    "INBOXSYNC_SYNC_URL",
    "INBOXSYNC_TASKS_SERVICE_ACCOUNT",
    "INBOXSYNC_SYNC_AUDIENCE",
    "INBOXSYNC_PUSH_EVENT_TTL_DAYS",
)
RUN_SYNC_ENV = (
    "INBOXSYNC_SYNC_AUDIENCE",
    "INBOXSYNC_SYNC_ALLOWED_EMAILS",
    "INBOXSYNC_RULES_FILE",
    "INBOXSYNC_MAX_ATTEMPTS",
    "INBOXSYNC_GMAIL_QUOTA_UNITS_PER_MINUTE",
    "INBOXSYNC_DELEGATED_ADMIN",
)
RENEW_WATCHES_ENV = (
    "INBOXSYNC_RENEW_AUDIENCE",
    "INBOXSYNC_RENEW_ALLOWED_EMAILS",
    "INBOXSYNC_GMAIL_TOPIC",
    "INBOXSYNC_WATCH_LABELS",
    "INBOXSYNC_TASKS_LOCATION",
    "INBOXSYNC_TASKS_QUEUE",
    "INBOXSYNC_SYNC_URL",
    "INBOXSYNC_SYNC_AUDIENCE",
    "INBOXSYNC_TASKS_SERVICE_ACCOUNT",
    "INBOXSYNC_DELEGATED_ADMIN",
)
# Where the product reads each function's variables (besides config.py).
SETTINGS_SOURCES = {
    "receive_push": ("config.py",),
    "run_sync": ("config.py", "sync/settings.py"),
    "renew_watches": ("config.py", "renewal.py"),
}
FUNCTIONS = ("receive_push", "run_sync", "renew_watches")
# Each invoker identity may call exactly one function.
INVOKERS = {
    "local.push_invoker_member": "receive_push",
    "local.tasks_invoker_member": "run_sync",
    "local.scheduler_member": "renew_watches",
}

# A number without its unit in the name is a bug waiting for a reader.
UNIT_SUFFIXES = (
    "_s",
    "_mb",
    "_days",
    "_count",
    "_attempts",
    "_doublings",
    "_dispatches",
    "_instances",
    "_per_second",
    "_per_minute",
    "_ratio",
)


# --- A small HCL reader ----------------------------------------------------------------


@dataclass
class Block:
    """One HCL block: `type "label" ... { attributes and nested blocks }`."""

    type: str
    labels: tuple[str, ...]
    line: int
    attributes: dict[str, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, block_type: str) -> list[Block]:
        return [block for block in self.blocks if block.type == block_type]

    def child(self, block_type: str) -> Block:
        (only,) = self.children(block_type)
        return only

    def walk(self) -> Iterator[Block]:
        yield self
        for block in self.blocks:
            yield from block.walk()


class _Reader:
    """Reads the block structure of one file; expressions are kept as text.

    It understands comments, quoted strings with `${...}` templates, heredocs
    and bracket nesting, which is all it needs to find where an attribute's
    expression ends. It is not a validator: `terraform fmt` already parses
    the files for real.
    """

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.pos = 0

    def error(self, message: str) -> AssertionError:
        line = self.text.count("\n", 0, self.pos) + 1
        return AssertionError(f"{self.name}:{line}: {message}")

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    def skip_space(self, *, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.peek()
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#" or self.peek(2) == "//":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif self.peek(2) == "/*":
                end = self.text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unclosed /* comment")
                self.pos = end + 2
            else:
                return

    def identifier(self) -> str:
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*").match(self.text, self.pos)
        if not match:
            raise self.error(f"expected a name, found {self.peek(20)!r}")
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        """Skip a quoted string (templates included); return its raw text."""
        start = self.pos
        self.pos += 1
        while self.pos < len(self.text):
            char = self.peek()
            if char == "\\":
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return self.text[start : self.pos]
            elif self.peek(2) in ("${", "%{"):
                self.pos += 2
                self.expression(until="}")
                self.pos += 1
            elif char == "\n":
                raise self.error("newline inside a quoted string")
            else:
                self.pos += 1
        raise self.error("unclosed string")

    def heredoc(self) -> None:
        match = re.compile(r"<<-?([A-Za-z_]+)\n").match(self.text, self.pos)
        if not match:
            raise self.error("malformed heredoc")
        closing = re.compile(rf"^[ \t]*{match.group(1)}[ \t]*$", re.MULTILINE)
        end = closing.search(self.text, match.end())
        if not end:
            raise self.error(f"heredoc {match.group(1)} never closed")
        self.pos = end.end()

    def expression(self, until: str | None = None) -> str:
        """Skip one expression; stop at a newline or `until` at depth zero."""
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            char = self.peek()
            if char == '"':
                self.quoted()
                continue
            if self.peek(2) == "<<" and re.match(r"<<-?[A-Za-z_]", self.peek(4)):
                self.heredoc()
                continue
            if char == "#" or self.peek(2) in ("//", "/*"):
                self.skip_space(newlines=False)
                continue
            if depth == 0 and (char == until or char == "\n" or char == "}"):
                break
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            self.pos += 1
        return self.text[start : self.pos].strip()

    def body(self, closing: bool) -> tuple[dict[str, str], list[Block]]:
        attributes: dict[str, str] = {}
        blocks: list[Block] = []
        while True:
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                if closing:
                    raise self.error("unclosed block")
                return attributes, blocks
            if self.peek() == "}":
                if not closing:
                    raise self.error("unexpected }")
                self.pos += 1
                return attributes, blocks

            line = self.text.count("\n", 0, self.pos) + 1
            name = self.identifier()
            self.skip_space(newlines=False)
            if self.peek() == "=" and self.peek(2) != "==":
                self.pos += 1
                self.skip_space(newlines=False)
                if name in attributes:
                    raise self.error(f"attribute {name} set twice")
                attributes[name] = self.expression()
                continue

            labels: list[str] = []
            while self.peek() != "{":
                if self.peek() == '"':
                    labels.append(self.quoted()[1:-1])
                else:
                    labels.append(self.identifier())
                self.skip_space(newlines=False)
            self.pos += 1
            inner_attributes, inner_blocks = self.body(closing=True)
            blocks.append(
                Block(name, tuple(labels), line, inner_attributes, inner_blocks)
            )


def read_blocks(path: Path) -> list[Block]:
    """Top-level blocks of one .tf file."""
    attributes, blocks = _Reader(path.read_text(), path.name).body(closing=False)
    assert not attributes, f"{path.name}: attributes outside any block: {attributes}"
    return blocks


@dataclass
class Config:
    """Every .tf file of the module, by file and by block kind."""

    files: dict[str, list[Block]]
    texts: dict[str, str]

    def blocks(self, block_type: str) -> list[Block]:
        return [
            block
            for blocks in self.files.values()
            for block in blocks
            if block.type == block_type
        ]

    def resource(self, resource_type: str, name: str) -> Block:
        (only,) = [
            block
            for block in self.blocks("resource")
            if block.labels == (resource_type, name)
        ]
        return only

    def locals(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for block in self.blocks("locals"):
            merged.update(block.attributes)
        return merged


@pytest.fixture(scope="module")
def config() -> Config:
    paths = sorted(TF_DIR.glob("*.tf"))
    assert paths, f"no .tf files in {TF_DIR}"
    return Config(
        files={path.name: read_blocks(path) for path in paths},
        texts={path.name: path.read_text() for path in paths},
    )


def _string(expression: str) -> str:
    """The value of a plain quoted string expression."""
    assert re.fullmatch(r'"(?:[^"\\]|\\.)*"', expression), expression
    return expression[1:-1]


def _object_keys(expression: str) -> set[str]:
    return set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=", expression, re.MULTILINE))


def _object_entry(expression: str, key: str) -> str:
    match = re.search(rf"^\s*{key}\s*=\s*(.+)$", expression, re.MULTILINE)
    assert match, f"{key} not set in {expression}"
    return match.group(1).strip()


def _terraform(
    *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    env = dict(os.environ)
    # No version check against the internet, no colour codes, no prompts.
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- With the terraform binary -----------------------------------------------------------


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    result = _terraform(
        "fmt", "-check", "-recursive", "-diff", "-no-color", "terraform"
    )

    assert result.returncode == 0, result.stdout + result.stderr


@needs_terraform
def test_example_tfvars_is_formatted() -> None:
    example = (TF_DIR / "terraform.tfvars.example").read_text()

    result = _terraform("fmt", "-no-color", "-", stdin=example)

    assert result.returncode == 0, result.stderr
    assert result.stdout == example


@needs_terraform
def test_configuration_loads_and_names_its_providers() -> None:
    # `terraform providers` loads and decodes the whole module without plugins.
    result = _terraform("-chdir=terraform", "providers", "-no-color")

    assert result.returncode == 0, result.stdout + result.stderr
    for provider in (
        "hashicorp/google]",
        "hashicorp/google-beta]",
        "hashicorp/archive]",
    ):
        assert provider in result.stdout


@needs_terraform
def test_terraform_validate_when_providers_are_installed() -> None:
    if not (TF_DIR / ".terraform" / "providers").is_dir():
        pytest.skip(
            "provider plugins not installed: `terraform init -backend=false` needs "
            "the Terraform registry, which this machine cannot reach; the static "
            "checks in this file stand in for validate"
        )

    result = _terraform("-chdir=terraform", "validate", "-no-color")

    assert result.returncode == 0, result.stdout + result.stderr


# --- Static checks ---------------------------------------------------------------------


def test_one_file_per_concern_exists() -> None:
    missing = [name for name in CONCERN_FILES if not (TF_DIR / name).is_file()]

    assert not missing
    assert (TF_DIR / "terraform.tfvars.example").is_file()


def test_every_variable_is_typed_described_and_unique(config: Config) -> None:
    variables = config.blocks("variable")
    names = [block.labels[0] for block in variables]

    assert len(names) == len(set(names))
    for block in variables:
        assert "type" in block.attributes, f"variable {block.labels[0]} has no type"
        description = _string(block.attributes.get("description", '""'))
        assert description.strip(), f"variable {block.labels[0]} has no description"
        for validation in block.children("validation"):
            assert set(validation.attributes) == {"condition", "error_message"}


def test_numeric_variables_carry_their_unit(config: Config) -> None:
    numeric = [
        block.labels[0]
        for block in config.blocks("variable")
        if block.attributes["type"] == "number"
    ]

    assert numeric
    unitless = [name for name in numeric if not name.endswith(UNIT_SUFFIXES)]
    assert not unitless


def test_every_output_is_described(config: Config) -> None:
    outputs = config.blocks("output")

    assert outputs
    for block in outputs:
        description = _string(block.attributes.get("description", '""'))
        assert description.strip(), f"output {block.labels[0]} has no description"
        assert "value" in block.attributes


def test_required_outputs_exist(config: Config) -> None:
    names = {block.labels[0] for block in config.blocks("output")}

    assert {
        "receive_push_url",
        "run_sync_url",
        "gmail_topic",
        "tasks_queue_id",
        "push_invoker_email",
        "tasks_invoker_email",
        "receive_push_service_account_email",
        "run_sync_service_account_email",
        "renew_watches_url",
        "renew_watches_job",
        "scheduler_invoker_email",
        "renew_watches_service_account_email",
    } <= names


def test_references_resolve_and_every_variable_is_used(config: Config) -> None:
    text = "\n".join(config.texts.values())
    variables = {block.labels[0] for block in config.blocks("variable")}
    local_names = set(config.locals())
    resources = {block.labels for block in config.blocks("resource")}
    data_sources = {block.labels for block in config.blocks("data")}

    used_variables = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))
    used_locals = set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", text))
    used_data = set(re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text))
    used_resources = {
        (kind, name)
        for kind, name in re.findall(
            r"(?<![\w.\"/-])((?:google|archive)_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)", text
        )
    }

    assert used_variables - variables == set(), "undeclared variables"
    assert variables - used_variables == set(), "variables nothing uses"
    assert used_locals - local_names == set(), "undeclared locals"
    assert local_names - used_locals == set(), "locals nothing uses"
    assert used_data - data_sources == set(), "undeclared data sources"
    assert used_resources - resources == set(), "undeclared resources"


def test_providers_are_pinned_to_ranges(config: Config) -> None:
    (terraform,) = [b for b in config.files["versions.tf"] if b.type == "terraform"]
    required = terraform.child("required_providers").attributes

    assert set(required) == {"google", "google-beta", "archive"}
    for name, spec in required.items():
        source = re.search(r'source\s*=\s*"([^"]+)"', spec)
        version = re.search(r'version\s*=\s*"([^"]+)"', spec)
        assert source and source.group(1) == f"hashicorp/{name}"
        assert version and ("<" in version.group(1) or "~>" in version.group(1))
    assert "required_version" in terraform.attributes


def test_functions_set_exactly_the_environment_the_product_reads(
    config: Config,
) -> None:
    functions_tf = config.texts["functions.tf"]
    common = config.locals()["common_env"]
    receive_push = config.resource("google_cloudfunctions2_function", "receive_push")
    run_sync = config.resource("google_cloudfunctions2_function", "run_sync")
    renew = config.resource("google_cloudfunctions2_function", "renew_watches")
    push_env = receive_push.child("service_config").attributes["environment_variables"]
    sync_env = run_sync.child("service_config").attributes["environment_variables"]
    renew_env = renew.child("service_config").attributes["environment_variables"]

    expected = (
        set(COMMON_ENV)
        | set(RECEIVE_PUSH_ENV)
        | set(RUN_SYNC_ENV)
        | set(RENEW_WATCHES_ENV)
    )
    for name in expected:
        assert name in functions_tf, f"{name} missing from functions.tf"
    mentioned = set(re.findall(r"\bINBOXSYNC_[A-Z0-9_]+", functions_tf))
    assert mentioned == expected, "functions.tf sets names the product does not read"
    assert _object_keys(common) >= set(COMMON_ENV)
    assert "local.common_env" in push_env
    assert "local.common_env" in sync_env
    assert "local.common_env" in renew_env
    assert _object_keys(push_env) == set(RECEIVE_PUSH_ENV)
    assert _object_keys(sync_env) | {"INBOXSYNC_DELEGATED_ADMIN"} == set(RUN_SYNC_ENV)
    assert "INBOXSYNC_DELEGATED_ADMIN" in sync_env
    assert _object_keys(renew_env) == set(RENEW_WATCHES_ENV)
    # Watch renewal asks for delegated credentials as the account run_sync uses.
    assert "var.delegated_admin" in _object_entry(
        renew_env, "INBOXSYNC_DELEGATED_ADMIN"
    )
    assert "run_sync.email" in _object_entry(renew_env, "INBOXSYNC_DELEGATED_ADMIN")
    assert _object_entry(renew_env, "INBOXSYNC_GMAIL_TOPIC") == (
        "google_pubsub_topic.gmail.id"
    )


@pytest.mark.parametrize(
    ("function", "names"),
    [
        ("receive_push", COMMON_ENV + RECEIVE_PUSH_ENV),
        ("run_sync", COMMON_ENV + RUN_SYNC_ENV),
        ("renew_watches", COMMON_ENV + RENEW_WATCHES_ENV),
    ],
)
def test_every_variable_set_is_read_by_the_product(
    function: str, names: tuple[str, ...]
) -> None:
    package = REPO_ROOT / "shared" / "inboxsync"
    source = "\n".join(
        (package / name).read_text() for name in SETTINGS_SOURCES[function]
    )
    read = set(re.findall(r'"(INBOXSYNC_[A-Z0-9_]+)"', source))
    # OIDC settings are read as f"{prefix}_AUDIENCE" with prefix="INBOXSYNC_X".
    for prefix in re.findall(r'prefix="(INBOXSYNC_[A-Z0-9_]+)"', source):
        for suffix in re.findall(r'f"\{prefix\}(_[A-Z_]+)"', source):
            read.add(prefix + suffix)

    unread = [name for name in names if name not in read]

    assert not unread, f"{function}: set by Terraform but never read"


def test_functions_run_python_311_from_the_dist_folders(config: Config) -> None:
    archive = next(
        block for block in config.blocks("data") if block.labels[0] == "archive_file"
    )

    assert "local.dist_dir" in archive.attributes["source_dir"]
    assert _string(config.locals()["runtime"]) == "python311"
    assert set(re.findall(r'"([a-z_]+)"', config.locals()["function_folders"])) == set(
        FUNCTIONS
    )
    for name in FUNCTIONS:
        function = config.resource("google_cloudfunctions2_function", name)
        build = function.child("build_config")
        assert _string(build.attributes["entry_point"]) == name
        assert build.attributes["runtime"] == "local.runtime"
        storage = build.child("source").child("storage_source")
        assert f'source["{name}"]' in storage.attributes["object"]


def test_push_audience_is_one_string_shared_by_subscription_and_function(
    config: Config,
) -> None:
    subscription = config.resource("google_pubsub_subscription", "gmail_push")
    oidc = subscription.child("push_config").child("oidc_token")
    receive_push = config.resource("google_cloudfunctions2_function", "receive_push")
    run_sync = config.resource("google_cloudfunctions2_function", "run_sync")
    push_env = receive_push.child("service_config").attributes["environment_variables"]
    sync_env = run_sync.child("service_config").attributes["environment_variables"]

    assert oidc.attributes["audience"] == "local.receive_push_url"
    assert "push_invoker.email" in oidc.attributes["service_account_email"]
    assert (
        _object_entry(push_env, "INBOXSYNC_PUSH_AUDIENCE") == "local.receive_push_url"
    )
    assert _object_entry(push_env, "INBOXSYNC_SYNC_URL") == "local.run_sync_url"
    assert _object_entry(push_env, "INBOXSYNC_SYNC_AUDIENCE") == "local.run_sync_url"
    assert _object_entry(sync_env, "INBOXSYNC_SYNC_AUDIENCE") == "local.run_sync_url"
    # Each function fails the apply if its real URL is not the computed one.
    renew = config.resource("google_cloudfunctions2_function", "renew_watches")
    for function, url in (
        (receive_push, "receive_push_url"),
        (run_sync, "run_sync_url"),
        (renew, "renew_watches_url"),
    ):
        postcondition = function.child("lifecycle").child("postcondition")
        assert postcondition.attributes["condition"] == f"self.url == local.{url}"


def test_scheduler_calls_renew_watches_daily_with_its_own_token(
    config: Config,
) -> None:
    job = config.resource("google_cloud_scheduler_job", "renew_watches")
    target = job.child("http_target")
    oidc = target.child("oidc_token")
    renew = config.resource("google_cloudfunctions2_function", "renew_watches")
    renew_env = renew.child("service_config").attributes["environment_variables"]
    schedule = next(
        block
        for block in config.blocks("variable")
        if block.labels[0] == "renew_watches_schedule"
    )
    apis = config.locals()["project_services"]

    assert job.attributes["schedule"] == "var.renew_watches_schedule"
    assert job.attributes["time_zone"] == "var.renew_watches_time_zone"
    assert _string(schedule.attributes["default"]).split()[2:] == ["*", "*", "*"]
    assert _string(target.attributes["http_method"]) == "POST"
    assert target.attributes["uri"] == "local.renew_watches_url"
    assert oidc.attributes["audience"] == "local.renew_watches_url"
    assert "scheduler_invoker.email" in oidc.attributes["service_account_email"]
    assert (
        _object_entry(renew_env, "INBOXSYNC_RENEW_AUDIENCE")
        == "local.renew_watches_url"
    )
    assert "scheduler_invoker.email" in _object_entry(
        renew_env, "INBOXSYNC_RENEW_ALLOWED_EMAILS"
    )
    assert _object_entry(renew_env, "INBOXSYNC_SYNC_URL") == "local.run_sync_url"
    assert _object_entry(renew_env, "INBOXSYNC_SYNC_AUDIENCE") == "local.run_sync_url"
    assert "tasks_invoker.email" in _object_entry(
        renew_env, "INBOXSYNC_TASKS_SERVICE_ACCOUNT"
    )
    # A 503 (some mailbox failed transiently) is retried.
    assert "var." in job.child("retry_config").attributes["retry_count"]
    assert '"cloudscheduler.googleapis.com"' in apis


def test_push_subscription_retries_and_dead_letters(config: Config) -> None:
    subscription = config.resource("google_pubsub_subscription", "gmail_push")
    dead_letter = subscription.child("dead_letter_policy")
    dead_letter_topic = config.resource("google_pubsub_topic", "gmail_dead_letter")
    dead_letter_sub = config.resource("google_pubsub_subscription", "gmail_dead_letter")

    assert subscription.attributes["ack_deadline_seconds"] == "var.ack_deadline_s"
    assert subscription.children("retry_policy")
    assert "gmail_dead_letter" in dead_letter.attributes["dead_letter_topic"]
    assert "gmail_dead_letter" in dead_letter_sub.attributes["topic"]
    assert dead_letter_topic is not None
    pubsub_tf = config.texts["pubsub.tf"]
    assert "gmail-api-push@system.gserviceaccount.com" in pubsub_tf
    iam_tf = config.texts["iam.tf"]
    assert "pubsub_agent_publishes_dead_letters" in iam_tf
    assert "pubsub_agent_acks_dead_letters" in iam_tf


def test_sync_queue_has_retry_and_rate_settings_from_variables(config: Config) -> None:
    queue = config.resource("google_cloud_tasks_queue", "sync")
    retry = queue.child("retry_config").attributes
    rates = queue.child("rate_limits").attributes

    assert set(retry) >= {"max_attempts", "min_backoff", "max_backoff", "max_doublings"}
    assert set(rates) == {"max_dispatches_per_second", "max_concurrent_dispatches"}
    for value in (*retry.values(), *rates.values()):
        assert "var." in value or "local." in value


def test_ttl_policies_cover_the_dedup_collections(config: Config) -> None:
    field_block = config.resource("google_firestore_field", "expires_at")
    groups = set(re.findall(r'"([a-z_]+)"', config.locals()["ttl_collection_groups"]))

    assert groups == {"push_events", "processed_messages", "actions"}
    assert _string(field_block.attributes["field"]) == "expiresAt"
    assert field_block.children("ttl_config")
    assert field_block.children("index_config")
    assert not field_block.child("index_config").attributes


def test_no_function_is_public(config: Config) -> None:
    text = "\n".join(config.texts.values())
    invokers = [
        block
        for block in config.blocks("resource")
        if block.labels[0] == "google_cloud_run_v2_service_iam_member"
    ]

    assert "allUsers" not in text
    assert "allAuthenticatedUsers" not in text
    assert len(invokers) == len(INVOKERS)
    for block in invokers:
        member = block.attributes["member"]
        assert member in INVOKERS, f"{member} may call a function"
        function = f"google_cloudfunctions2_function.{INVOKERS[member]}"
        assert block.attributes["name"] == f"{function}.name"
        assert _string(block.attributes["role"]) == "roles/run.invoker"
    # No project-wide invoker grant that would open every function.
    for block in config.blocks("resource"):
        if block.labels[0].startswith("google_project_iam"):
            assert "roles/run.invoker" not in " ".join(block.attributes.values())


def test_runtime_service_accounts_get_the_roles_their_code_needs(
    config: Config,
) -> None:
    grants: dict[str, set[str]] = {}
    for block in config.blocks("resource"):
        role = block.attributes.get("role", "")
        member = block.attributes.get("member", "")
        if role.startswith('"') and member.startswith("local."):
            grants.setdefault(member, set()).add(_string(role))

    assert grants["local.receive_push_member"] == {
        "roles/datastore.user",
        "roles/cloudtasks.enqueuer",
        "roles/iam.serviceAccountUser",
    }
    assert grants["local.run_sync_member"] == {
        "roles/datastore.user",
        "roles/secretmanager.secretAccessor",
        "roles/iam.serviceAccountTokenCreator",
    }
    assert grants["local.renew_watches_member"] == {
        "roles/datastore.user",
        "roles/cloudtasks.enqueuer",
        "roles/iam.serviceAccountUser",
        "roles/secretmanager.secretAccessor",
        "roles/iam.serviceAccountTokenCreator",
    }
    assert grants["local.scheduler_member"] == {"roles/run.invoker"}


def test_renew_watches_grants_are_scoped_to_one_resource_each(config: Config) -> None:
    grants = {
        _string(block.attributes["role"]): block
        for block in config.blocks("resource")
        if block.attributes.get("member") == "local.renew_watches_member"
    }

    firestore = grants["roles/datastore.user"]
    assert firestore.child("condition").attributes["expression"] == (
        "local.firestore_condition"
    )
    enqueuer = grants["roles/cloudtasks.enqueuer"]
    assert enqueuer.labels[0] == "google_cloud_tasks_queue_iam_member"
    assert enqueuer.attributes["name"] == "google_cloud_tasks_queue.sync.name"
    acts_as = grants["roles/iam.serviceAccountUser"]
    assert acts_as.attributes["service_account_id"] == (
        "google_service_account.tasks_invoker.name"
    )
    signs = grants["roles/iam.serviceAccountTokenCreator"]
    assert signs.attributes["service_account_id"] == (
        "google_service_account.run_sync.name"
    )
    secrets = grants["roles/secretmanager.secretAccessor"]
    assert "var.oauth_secret_prefix" in secrets.child("dynamic").attributes["for_each"]


def test_example_tfvars_only_sets_declared_variables(config: Config) -> None:
    example = (TF_DIR / "terraform.tfvars.example").read_text()
    declared = {block.labels[0] for block in config.blocks("variable")}
    required = {
        block.labels[0]
        for block in config.blocks("variable")
        if "default" not in block.attributes
    }

    set_names = set(re.findall(r"^([a-z_][a-z0-9_]*)\s*=", example, re.MULTILINE))
    mentioned = set(
        re.findall(r"^(?:# )?([a-z_][a-z0-9_]*)\s+=", example, re.MULTILINE)
    )
    assert mentioned <= declared
    assert required <= set_names


def test_deploy_guide_lists_every_variable_and_output(config: Config) -> None:
    guide = (REPO_ROOT / "terraform" / "README.md").read_text()
    names = [
        block.labels[0] for block in config.blocks("variable") + config.blocks("output")
    ]

    undocumented = [name for name in names if f"`{name}`" not in guide]

    assert not undocumented


def test_reader_handles_templates_heredocs_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "sample.tf"
    path.write_text(
        "# comment { not a block\n"
        'resource "x" "y" {\n'
        '  a = "${var.b}-{${lookup({ k = "}" }, "k")}}" // trailing }\n'
        "  b = <<-EOT\n"
        "    } still text {\n"
        "  EOT\n"
        "  /* block comment } */\n"
        "  nested {}\n"
        "  c = {\n"
        "    d = [1, 2]\n"
        "  }\n"
        "}\n"
    )

    (block,) = read_blocks(path)

    assert block.labels == ("x", "y")
    assert set(block.attributes) == {"a", "b", "c"}
    assert block.attributes["b"].startswith("<<-EOT")
    assert [child.type for child in block.blocks] == ["nested"]
