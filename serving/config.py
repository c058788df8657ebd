"""TF Serving's configuration files, read and written: ``models.config`` (``ModelServerConfig``),
``monitoring.config`` (``MonitoringConfig``) and the batching parameters file (`keras_gen.serving.batching`).

The same files drive the real ``tensorflow_model_server`` (see ``docker-compose.yml``) and `ModelServer`:

    model_config_list {
      config {
        name: "dcgan"
        base_path: "/models/dcgan"          # the container's path; the local server resolves relative paths
        model_platform: "tensorflow"        #   against its BASE and takes absolute ones as they are
        model_version_policy { latest { num_versions: 1 } }   # or: all {} | specific { versions: 1 versions: 2 }
        version_labels { key: "stable" value: 1 }
      }
    }

``models.config`` is parsed with TF Serving's own proto (``tensorflow_serving.config.model_server_config_pb2``);
the monitoring and batching files, whose protos ``tensorflow-serving-api`` does not ship, with `parse_text_proto`.
"""

import dataclasses
import os
import re

__all__ = [
    "ModelSource",
    "parse_text_proto",
    "read_model_config",
    "discover_models",
    "models_config_text",
    "write_models_config",
    "read_monitoring_config",
    "PROMETHEUS_PATH",
]

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""TF Serving's default path of the Prometheus page on the REST port."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One served model: where its version folders are and which of them to serve.

    Attributes:
        name: the model name clients use.
        base_path: the folder holding integer version folders (``BASE/NAME``).
        policy: ``"latest"`` (the newest ``num_versions``), ``"all"`` or ``"specific"`` (``versions``), as TF
            Serving's ``model_version_policy``.
        num_versions: how many of the newest versions ``"latest"`` serves.
        versions: the versions ``"specific"`` serves.
        labels: ``{label: version}`` (``version_labels``), for requests naming a label.
    """

    name: str
    base_path: str
    policy: str = "latest"
    num_versions: int = 1
    versions: tuple = ()
    labels: tuple = ()  # ((label, version), ...): hashable; `label_map` gives the dict

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"Model name {self.name!r} is not valid: use letters, digits, '_', '.', '-' (starting with a letter "
                "or digit)."
            )
        if self.policy not in ("latest", "all", "specific"):
            raise ValueError(f"Unknown version policy {self.policy!r}. Valid: latest, all, specific.")
        if self.policy == "latest" and (isinstance(self.num_versions, bool) or int(self.num_versions) < 1):
            raise ValueError(f"`num_versions` must be a positive integer, got {self.num_versions!r}.")
        if self.policy == "specific" and not self.versions:
            raise ValueError(f"Model {self.name!r}: the 'specific' version policy needs at least one version.")
        labels = dict(self.labels) if not isinstance(self.labels, dict) else self.labels
        object.__setattr__(self, "labels", tuple(sorted((str(k), int(v)) for k, v in labels.items())))
        object.__setattr__(self, "versions", tuple(sorted(int(v) for v in self.versions)))

    @property
    def label_map(self):
        return dict(self.labels)

    def select(self, versions):
        """The versions to serve among the loadable ``versions`` on disk."""
        versions = sorted(versions)
        if self.policy == "latest":
            return versions[-int(self.num_versions):]
        if self.policy == "all":
            return versions
        return [v for v in versions if v in self.versions]


def _integer_dirs(path):
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(path, n)))


def discover_models(base, model_name=None):
    """The models under a base path, each served at its latest version.

    ``base`` is either a TF Serving base path whose sub-folders are models (``BASE/NAME/VERSION``), or one model's
    folder (``BASE/VERSION``, named ``model_name`` or after the folder). Folders starting with ``.`` (the
    exporter's staging folders) are skipped.

    Raises:
        FileNotFoundError: ``base`` is not a folder.
    """
    base = os.path.abspath(os.fspath(base))
    if not os.path.isdir(base):
        raise FileNotFoundError(f"Model base path {base!r} is not a folder.")
    if _integer_dirs(base):
        return [ModelSource(model_name or os.path.basename(base), base)]
    if model_name is not None:
        path = os.path.join(base, model_name)
        return [ModelSource(model_name, path)]
    sources = []
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if name.startswith(".") or not os.path.isdir(path) or not _NAME.match(name):
            continue
        sources.append(ModelSource(name, path))
    return sources


def read_model_config(path, base=None):
    """``models.config`` (TF Serving's ``ModelServerConfig`` text format) as a list of `ModelSource`.

    Args:
        path: the file.
        base: relative ``base_path`` s are resolved against this folder (default: the file's folder).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the text does not parse, uses ``custom_model_config``, names a model twice, or a platform
            other than ``tensorflow``.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.fspath(path)
    with open(path) as f:
        text = f.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ValueError(f"{path} is not a valid ModelServerConfig: {exc}") from exc
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path} must hold a model_config_list (custom_model_config is not supported).")
    base = os.path.abspath(os.fspath(base) if base is not None else os.path.dirname(os.path.abspath(path)))
    sources, seen = [], set()
    for model in config.model_config_list.config:
        if model.name in seen:
            raise ValueError(f"{path} names model {model.name!r} twice.")
        seen.add(model.name)
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model.name!r} has platform {model.model_platform!r}; only 'tensorflow'.")
        policy = model.model_version_policy
        which = policy.WhichOneof("policy_choice")
        kwargs = {}
        if which == "all":
            kwargs["policy"] = "all"
        elif which == "specific":
            kwargs.update(policy="specific", versions=tuple(policy.specific.versions))
        elif which == "latest" and policy.latest.num_versions:
            kwargs["num_versions"] = policy.latest.num_versions
        model_path = model.base_path or model.name
        model_path = model_path if os.path.isabs(model_path) else os.path.join(base, model_path)
        sources.append(ModelSource(model.name, model_path, labels=dict(model.version_labels), **kwargs))
    if not sources:
        raise ValueError(f"{path} lists no models.")
    return sources


def models_config_text(sources, root="/models"):
    """``models.config`` text for ``sources`` (a list of `ModelSource` or model names), with each base path
    ``root/NAME`` (the folder the base path is mounted on in the container)."""
    blocks = []
    for source in sources:
        if isinstance(source, str):
            source = ModelSource(source, source)
        if source.policy == "all":
            policy = "all {}"
        elif source.policy == "specific":
            policy = "specific { " + " ".join(f"versions: {v}" for v in source.versions) + " }"
        else:
            policy = f"latest {{ num_versions: {source.num_versions} }}"
        lines = [
            "  config {",
            f'    name: "{source.name}"',
            f'    base_path: "{root.rstrip("/")}/{source.name}"',
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ {policy} }}",
        ]
        lines += [f'    version_labels {{ key: "{k}" value: {v} }}' for k, v in source.labels]
        lines.append("  }")
        blocks.append("\n".join(lines))
    return "model_config_list {\n" + "\n".join(blocks) + "\n}\n"


def write_models_config(base, path, root="/models"):
    """Writes a ``models.config`` serving every model found under ``base`` (see `discover_models`) at its latest
    version, with base paths under ``root`` (the container's mount point). Returns the path written."""
    sources = discover_models(base)
    if not sources:
        raise FileNotFoundError(f"No model folders under {base!r}.")
    text = models_config_text(sources, root=root)
    with open(path, "w") as f:
        f.write(text)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------- text protos
_TOKEN = re.compile(
    r'\s*(?:(#[^\n]*)|([A-Za-z_][A-Za-z0-9_.]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|'
    r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))|([{}:<>\[\],;]))"
)


def _tokens(text):
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"Cannot parse the text proto at character {position}: {text[position:position + 20]!r}.")
        position = match.end()
        comment, name, string, number, punct = match.groups()
        if comment is not None:
            continue
        if name is not None:
            yield ("name", name)
        elif string is not None:
            yield ("value", string[1:-1].encode().decode("unicode_escape"))
        elif number is not None:
            yield ("value", float(number) if any(c in number for c in ".eE") else int(number))
        else:
            yield ("punct", punct)


def parse_text_proto(text):
    """Protobuf text format as ``{field: [values]}`` (a nested message is a dict of the same form), without a
    schema: ``max_batch_size { value: 128 }`` -> ``{"max_batch_size": [{"value": [128]}]}``. ``true``/``false``
    become booleans; other bare words stay strings (enum values).

    Raises:
        ValueError: the text is not well formed.
    """
    tokens = list(_tokens(text))
    position = 0

    def message(closing):
        nonlocal position
        fields = {}
        while position < len(tokens):
            kind, value = tokens[position]
            if kind == "punct" and value == closing:
                position += 1
                return fields
            if kind == "punct" and value in ",;":
                position += 1
                continue
            if kind != "name":
                raise ValueError(f"Expected a field name in the text proto, got {value!r}.")
            name = value
            position += 1
            if position < len(tokens) and tokens[position] == ("punct", ":"):
                position += 1
            if position >= len(tokens):
                raise ValueError(f"Field {name!r} has no value.")
            kind, value = tokens[position]
            if kind == "punct" and value in "{<":
                position += 1
                fields.setdefault(name, []).append(message("}" if value == "{" else ">"))
            elif kind == "punct" and value == "[":
                position += 1
                while tokens[position] != ("punct", "]"):
                    if tokens[position] != ("punct", ","):
                        fields.setdefault(name, []).append(_scalar(tokens[position]))
                    position += 1
                position += 1
            else:
                fields.setdefault(name, []).append(_scalar(tokens[position]))
                position += 1
        if closing is not None:
            raise ValueError(f"The text proto is missing a closing {closing!r}.")
        return fields

    return message(None)


def _scalar(token):
    kind, value = token
    if kind == "punct":
        raise ValueError(f"Expected a value in the text proto, got {value!r}.")
    if kind == "name":
        return {"true": True, "false": False, "True": True, "False": False}.get(value, value)
    return value


def read_monitoring_config(path):
    """``monitoring.config`` (``prometheus_config { enable: true path: "..." }``): the Prometheus page's path,
    or None when it is not enabled.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the text does not parse or has fields other than ``prometheus_config``.
    """
    with open(os.fspath(path)) as f:
        fields = parse_text_proto(f.read())
    unknown = set(fields) - {"prometheus_config"}
    if unknown:
        raise ValueError(f"{path}: unknown monitoring field(s) {sorted(unknown)}; valid: prometheus_config.")
    prometheus = (fields.get("prometheus_config") or [{}])[-1]
    unknown = set(prometheus) - {"enable", "path", "enable_model_metrics"}
    if unknown:
        raise ValueError(f"{path}: unknown prometheus_config field(s) {sorted(unknown)}; valid: enable, path.")
    if not (prometheus.get("enable") or [False])[-1]:
        return None
    path_value = (prometheus.get("path") or [PROMETHEUS_PATH])[-1]
    if not isinstance(path_value, str) or not path_value.startswith("/"):
        raise ValueError(f"{path}: prometheus_config.path must start with '/', got {path_value!r}.")
    return path_value
