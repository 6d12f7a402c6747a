"""Extract the parts of 3CX's API descriptions the simulator serves into tests/data/ as JSON Schema.

Sources (read only here, never at test time):
- ../shared/reference/xapi-v20.openapi.json (relative to the repository root): 3CX's official XAPI
  OpenAPI document for 20.0.10, converted from `swagger.yaml` of GitHub `3cx/xapi-tutorial`
  (file last changed in commit ceb6d0de3cc4f828e5afc24f8aa415073dffc483, git blob
  70927fa847ef6d6b592b21564b7769358b17f853).
- ../shared/reference/callcontrol-v20.openapi.yaml: a reconstruction of 3CX's written page
  "3CX Call Control API Endpoint Specification" (www.3cx.com/docs/call-control-api-endpoints/);
  3CX publishes no machine-readable Call Control spec.

Output:
- tests/data/xapi-schemas.json: for every (method, path) in `gateway.sim.xapi.SERVED_PATHS`, the
  success status and response schema the spec declares, plus every schema they reference, rewritten
  as JSON Schema: `nullable` becomes a `null` type, `allOf` is merged, objects reject unknown
  properties (OData annotations such as `@odata.context` excepted).
- tests/data/callcontrol-schemas.json: the Call Control schemas (DNInfo, DNDevice, CallParticipant,
  CallControlResultResponse, WsEvent, WebSocketResponse and the enums) in the same form.

Run from the repository root: `.venv/bin/python tools/extract_specs.py` (needs PyYAML for the
Call Control file).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference"
XAPI_SOURCE = REFERENCE / "xapi-v20.openapi.json"
CALLCONTROL_SOURCE = REFERENCE / "callcontrol-v20.openapi.yaml"
XAPI_ORIGIN = ("GitHub 3cx/xapi-tutorial swagger.yaml (3CX 20.0.10), commit "
               "ceb6d0de3cc4f828e5afc24f8aa415073dffc483, blob 70927fa847ef6d6b592b21564b7769358b17f853; "
               "converted YAML->JSON without content change")
CALLCONTROL_ORIGIN = ("reconstruction of 3CX's page '3CX Call Control API Endpoint Specification' "
                      "(www.3cx.com/docs/call-control-api-endpoints/, 19 March 2025) and "
                      "3cx/call-control-examples; not an official 3CX file")
CALLCONTROL_ROOTS = ("DNInfo", "DNDevice", "CallParticipant", "CallControlResultResponse", "WsEvent",
                     "WebSocketResponse", "WebSocketRequest", "ParticipantStatus", "DnTypeName",
                     "WsEventType", "DivertReason", "ParticipantAction", "MakeCallRequest",
                     "ParticipantActionRequest")
KEPT_KEYWORDS = ("type", "format", "pattern", "enum", "minimum", "maximum", "maxLength", "default")
ANNOTATIONS = {"^@odata\\.": {}}


def main() -> int:
    """Write both data files; return the process exit code."""
    sys.path.insert(0, str(REPO))
    from gateway.sim.xapi import SERVED_PATHS  # the simulator says what it serves

    xapi = json.loads(XAPI_SOURCE.read_text(encoding="utf-8"))
    data = {"source": {"file": "../shared/reference/xapi-v20.openapi.json", "origin": XAPI_ORIGIN,
                       "sha256": _sha256(XAPI_SOURCE)},
            "paths": {}, "error": None, "definitions": {}}
    converter = _Converter(xapi["components"]["schemas"])
    for method, path in SERVED_PATHS:
        operation = xapi["paths"].get(path, {}).get(method.lower())
        if operation is None:
            raise SystemExit(f"{method} {path} is not in the XAPI spec")
        status, schema = _success(xapi, operation)
        converted = converter.convert(schema) if schema is not None else None
        data["paths"].setdefault(path, {})[method] = {"status": status, "schema": converted}
    # Every operation's `default` response is this error body.
    data["error"] = converter.convert({"$ref": "#/components/schemas/Pbx.ODataErrors.ODataError"})
    data["definitions"] = converter.closure()
    _write(REPO / "tests" / "data" / "xapi-schemas.json", data)

    import yaml  # only this tool needs PyYAML

    callcontrol = yaml.safe_load(CALLCONTROL_SOURCE.read_text(encoding="utf-8"))
    converter = _Converter(callcontrol["components"]["schemas"], set(CALLCONTROL_ROOTS), odata=False)
    _write(REPO / "tests" / "data" / "callcontrol-schemas.json", {
        "source": {"file": "../shared/reference/callcontrol-v20.openapi.yaml", "origin": CALLCONTROL_ORIGIN,
                   "sha256": _sha256(CALLCONTROL_SOURCE)},
        "definitions": converter.closure()})
    return 0


def _success(spec: dict, operation: dict) -> tuple[int, dict | None]:
    """The first 2xx status of an operation and its JSON schema (None when it has no body)."""
    for status, response in sorted(operation["responses"].items()):
        if not status.startswith("2"):
            continue
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        content = response.get("content", {}).get("application/json")
        return int(status), (content or {}).get("schema")
    raise SystemExit(f"no success response in {operation.get('operationId')}")


class _Converter:
    """Rewrites OpenAPI 3.0 schemas of one document as JSON Schema, collecting referenced names."""

    def __init__(self, schemas: dict, roots: set[str] | None = None, *, odata: bool = True) -> None:
        self.schemas = schemas
        self.annotations = ANNOTATIONS if odata else {}
        self.refs: set[str] = set(roots or ())

    def closure(self) -> dict:
        """Every schema named in `refs` and, transitively, everything they reference."""
        done: dict[str, Any] = {}
        while pending := sorted(self.refs - done.keys()):
            for name in pending:
                done[name] = self.convert(self.schemas[name])
        return dict(sorted(done.items()))

    def convert(self, schema: dict) -> dict:
        """One schema as JSON Schema."""
        if "$ref" in schema:
            out: dict[str, Any] = self._ref(schema["$ref"])
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema:
            out = self.convert(schema["allOf"][0])
        elif "allOf" in schema or "properties" in schema:
            out = {"type": "object", "properties": {}, "additionalProperties": False}
            if self.annotations:
                out["patternProperties"] = self.annotations
            properties, required = self._merged(schema)
            out["properties"] = {name: self.convert(prop) for name, prop in properties.items()}
            if required:
                out["required"] = sorted(required)
        elif "oneOf" in schema or "anyOf" in schema:
            out = {"anyOf": [self.convert(s) for s in schema.get("oneOf", schema.get("anyOf"))]}
        else:
            out = {k: schema[k] for k in KEPT_KEYWORDS if k in schema}
            if "items" in schema:
                out["items"] = self.convert(schema["items"])
            if isinstance(schema.get("additionalProperties"), dict):
                out["additionalProperties"] = self.convert(schema["additionalProperties"])
        return _nullable(out) if schema.get("nullable") else out

    def _merged(self, schema: dict) -> tuple[dict, set[str]]:
        """Properties and required names of an object, `allOf` members (and their $refs) merged."""
        properties: dict[str, Any] = {}
        required: set[str] = set()
        for part in schema.get("allOf", []) + [schema]:
            if "$ref" in part:
                part_properties, part_required = self._merged(self.schemas[part["$ref"].rsplit("/", 1)[1]])
            else:
                part_properties, part_required = part.get("properties", {}), set(part.get("required", []))
            properties.update(part_properties)
            required |= part_required
        return properties, required

    def _ref(self, ref: str) -> dict:
        name = ref.rsplit("/", 1)[1]
        self.refs.add(name)
        return {"$ref": f"#/definitions/{name}"}


def _nullable(out: dict) -> dict:
    """`out` also accepting null."""
    if "type" in out and isinstance(out["type"], str) and "enum" not in out and out["type"] != "object":
        return {**out, "type": [out["type"], "null"]}
    if "enum" in out:
        return {k: v for k, v in out.items() if k != "type"} | {"enum": out["enum"] + [None]}
    return {"anyOf": [out, {"type": "null"}]}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    raise SystemExit(main())
