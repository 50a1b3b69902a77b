"""What the local stack reads from ``template.yaml``: the API routes, the functions behind them, the table.

Routes come from the template itself (not a second hand-kept list), so the local gateway serves exactly
what API Gateway would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

__all__ = ["FunctionSpec", "Route", "StackTemplate", "load_template"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any]

    @property
    def streams(self) -> bool:
        """A Lambda Web Adapter function: ``run.sh`` starts an ASGI app under uvicorn."""
        return self.handler.endswith(".sh")

    def asgi_target(self) -> tuple[str, str]:
        """``(module, attribute)`` of the ASGI app that ``run.sh`` serves (``uvicorn … app:app``)."""
        script = (self.code_dir / self.handler).read_text()
        match = re.search(r"uvicorn\b.*?\s([\w.]+):(\w+)\s*$", script, re.MULTILINE)
        if not match:
            raise ValueError(f"{self.handler} does not start an ASGI app with uvicorn")
        return match.group(1), match.group(2)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # API Gateway resource path, without the stage: /responses/{response_id}
    function: FunctionSpec
    streaming: bool  # ResponseTransferMode: RESPONSE_STREAM

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


@dataclass(frozen=True, slots=True)
class StackTemplate:
    stage: str
    routes: list[Route]
    table_properties: dict[str, Any]


@cache
def load_template(path: Path = ROOT / "template.yaml") -> StackTemplate:
    doc: dict[str, Any] = yaml_parse(path.read_text())
    resources: dict[str, Any] = doc["Resources"]
    apis = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Api"]
    stage = str(apis[0]["Properties"]["StageName"]) if apis else "Prod"
    routes: list[Route] = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        spec = FunctionSpec(
            logical_id=logical_id,
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            environment=props.get("Environment", {}).get("Variables", {}),
        )
        for event in props.get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            ev = event["Properties"]
            streaming = ev.get("ResponseTransferMode") == "RESPONSE_STREAM"
            routes.append(Route(ev["Method"].upper(), ev["Path"], spec, streaming))
    # API Gateway prefers literal segments over {params}: sort so /responses/x/input_items wins over {id}.
    routes.sort(key=lambda r: (r.path.count("{"), -len(r.path)))
    tables = [r for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    return StackTemplate(stage=stage, routes=routes, table_properties=tables[0]["Properties"])
