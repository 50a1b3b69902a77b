"""What the local stack reads from ``template.yaml``: the API routes, the functions, the table, the state machines,
and the API's authorizer, usage plan and gateway responses.

Routes come from the template itself (not a second hand-kept list), so the local gateway serves exactly
what API Gateway would; state machines are created on moto from the same ASL file the template deploys.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

from samtranslator.yaml_helper import yaml_parse

__all__ = [
    "ApiSpec",
    "AuthorizerSpec",
    "FunctionSpec",
    "GatewayResponseSpec",
    "Route",
    "StackTemplate",
    "StateMachineSpec",
    "UsagePlanSpec",
    "WebSocketApiSpec",
    "load_template",
]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any]  # the function's own variables (Globals not merged; intrinsics as dicts)
    timeout: int = 3  # seconds (Lambda's default when neither the function nor Globals set one)
    memory_mb: int = 128

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


_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class StateMachineSpec:
    logical_id: str
    definition_path: Path  # DefinitionUri: the ASL file
    substitutions: dict[str, Any]  # DefinitionSubstitutions as written (intrinsics as dicts)
    type: Literal["STANDARD", "EXPRESS"] = "STANDARD"

    def function_substitutions(self, functions: Container[str]) -> dict[str, str]:
        """``{placeholder: function logical id}`` for substitutions that are ``!GetAtt F.Arn`` or ``!Ref F`` of
        one of ``functions``."""
        out: dict[str, str] = {}
        for name, value in self.substitutions.items():
            if not isinstance(value, dict):
                continue
            getatt, ref = value.get("Fn::GetAtt"), value.get("Ref")
            target = getatt[0] if isinstance(getatt, list) and getatt[1:] == ["Arn"] else ref
            if isinstance(target, str) and target in functions:
                out[name] = target
        return out

    def definition(self, values: dict[str, str]) -> str:
        """The ASL with every ``${Name}`` replaced, as CloudFormation does with DefinitionSubstitutions."""
        text = self.definition_path.read_text()
        missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
        if missing:
            raise KeyError(f"{self.logical_id}: no value for {', '.join(missing)}")
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class AuthorizerSpec:
    """A Lambda REQUEST authorizer (``Auth.Authorizers.<name>`` with ``FunctionPayloadType: REQUEST``)."""

    name: str
    function: FunctionSpec
    identity_headers: tuple[str, ...]  # Identity.Headers: all must be present, or API Gateway answers 401
    ttl_seconds: int  # Identity.ReauthorizeEvery (API Gateway's default 300), parameters resolved to defaults


@dataclass(frozen=True, slots=True)
class UsagePlanSpec:
    """The ``AWS::ApiGateway::UsagePlan`` of the API's stage (throttle per API key)."""

    rate_limit: float
    burst_limit: int


@dataclass(frozen=True, slots=True)
class GatewayResponseSpec:
    """One of the API's ``GatewayResponses``: status, headers (values unquoted) and the JSON body template."""

    status: int | None
    headers: dict[str, str]
    template: str | None


@dataclass(frozen=True, slots=True)
class ApiSpec:
    authorizer: AuthorizerSpec | None = None  # the DefaultAuthorizer
    api_key_required: bool = False
    api_key_source: str = "HEADER"  # ApiKeySourceType
    binary_media_types: tuple[str, ...] = ()  # BinaryMediaTypes: request bodies of these types arrive base64
    usage_plan: UsagePlanSpec | None = None
    gateway_responses: dict[str, GatewayResponseSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebSocketApiSpec:
    """An ``AWS::ApiGatewayV2::Api`` with ``ProtocolType: WEBSOCKET``: its stage, the function behind each route
    key (``$connect``, ``$default``, ``$disconnect``) and the ``$connect`` route's REQUEST authorizer."""

    logical_id: str
    stage: str
    routes: dict[str, FunctionSpec]
    authorizer: FunctionSpec | None = None
    identity_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StackTemplate:
    stage: str
    routes: list[Route]
    table_properties: dict[str, Any]
    functions: dict[str, FunctionSpec]  # every AWS::Serverless::Function, by logical id
    state_machines: dict[str, StateMachineSpec]  # every AWS::Serverless::StateMachine, by logical id
    table_id: str = "Table"  # logical id of the AWS::DynamoDB::Table
    parameters: dict[str, Any] = field(default_factory=dict)  # parameter defaults
    api: ApiSpec = field(default_factory=ApiSpec)
    websocket: WebSocketApiSpec | None = None
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # AWS::S3::Bucket properties by logical id


_SUB_REF = re.compile(r"\$\{(\w+)(?:\.Arn)?\}")


def _sub_refs(value: Any) -> list[str]:
    """Logical ids a ``!Sub`` string (or ``!Ref``) names: ``integrations/${X}`` → X, ``…${F.Arn}/invocations`` → F."""
    if isinstance(value, dict) and "Ref" in value:
        return [str(value["Ref"])]
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    return _SUB_REF.findall(text) if isinstance(text, str) else []


def _websocket_spec(resources: dict[str, Any], functions: dict[str, FunctionSpec]) -> WebSocketApiSpec | None:
    apis = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::ApiGatewayV2::Api" and r["Properties"].get("ProtocolType") == "WEBSOCKET"
    ]
    if not apis:
        return None
    api = apis[0]

    def of_api(kind: str) -> dict[str, dict[str, Any]]:
        return {
            name: r["Properties"]
            for name, r in resources.items()
            if r["Type"] == kind and _sub_refs(r["Properties"].get("ApiId")) == [api]
        }

    def function_of(uri: Any) -> FunctionSpec:
        found = [functions[ref] for ref in _sub_refs(uri) if ref in functions]
        if not found:
            raise ValueError(f"{api}: the local stack runs Lambda integrations of this template's functions only")
        return found[0]

    integrations, authorizers = of_api("AWS::ApiGatewayV2::Integration"), of_api("AWS::ApiGatewayV2::Authorizer")
    routes: dict[str, FunctionSpec] = {}
    authorizer: FunctionSpec | None = None
    headers: tuple[str, ...] = ()
    for route in of_api("AWS::ApiGatewayV2::Route").values():
        targets = [integrations[ref] for ref in _sub_refs(route.get("Target")) if ref in integrations]
        if not targets:
            continue
        routes[str(route["RouteKey"])] = function_of(targets[0]["IntegrationUri"])
        if route["RouteKey"] == "$connect" and route.get("AuthorizationType") == "CUSTOM":
            config = authorizers[_sub_refs(route["AuthorizerId"])[0]]
            authorizer = function_of(config["AuthorizerUri"])
            sources = config.get("IdentitySource") or []
            headers = tuple(s.split("route.request.header.", 1)[1] for s in sources if "header." in s)
    stages = [props["StageName"] for props in of_api("AWS::ApiGatewayV2::Stage").values()]
    return WebSocketApiSpec(api, str(stages[0]) if stages else "$default", routes, authorizer, headers)


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """``!Ref Parameter`` → the parameter's default (what the local stack runs with); anything else as is."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    return value


def _api_spec(
    api_id: str | None, resources: dict[str, Any], functions: dict[str, FunctionSpec], parameters: dict[str, Any]
) -> ApiSpec:
    if api_id is None:
        return ApiSpec()
    props: dict[str, Any] = resources[api_id]["Properties"]
    auth: dict[str, Any] = props.get("Auth") or {}
    authorizer: AuthorizerSpec | None = None
    default = auth.get("DefaultAuthorizer")
    if default and default != "NONE":
        config = auth["Authorizers"][default]
        arn = config.get("FunctionArn")
        target = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
        if target not in functions or config.get("FunctionPayloadType") != "REQUEST":
            raise ValueError(f"{api_id}: the local stack runs REQUEST authorizers of this template's functions only")
        identity = config.get("Identity") or {}
        authorizer = AuthorizerSpec(
            name=default,
            function=functions[target],
            identity_headers=tuple(identity.get("Headers") or ()),
            ttl_seconds=int(_resolve(identity.get("ReauthorizeEvery", 300), parameters)),
        )
    usage_plan: UsagePlanSpec | None = None
    for resource in resources.values():
        if resource["Type"] != "AWS::ApiGateway::UsagePlan":
            continue
        plan = resource["Properties"]
        if any((stage.get("ApiId") or {}).get("Ref") == api_id for stage in plan.get("ApiStages") or []):
            throttle = plan.get("Throttle") or {}
            usage_plan = UsagePlanSpec(
                rate_limit=float(_resolve(throttle.get("RateLimit", 10_000), parameters)),
                burst_limit=int(_resolve(throttle.get("BurstLimit", 5_000), parameters)),
            )
    responses: dict[str, GatewayResponseSpec] = {}
    for kind, response in (props.get("GatewayResponses") or {}).items():
        headers = (response.get("ResponseParameters") or {}).get("Headers") or {}
        status = response.get("StatusCode")
        responses[kind] = GatewayResponseSpec(
            status=int(status) if status is not None else None,
            headers={name: str(value).strip("'") for name, value in headers.items()},
            template=(response.get("ResponseTemplates") or {}).get("application/json"),
        )
    return ApiSpec(
        authorizer=authorizer,
        api_key_required=bool(auth.get("ApiKeyRequired", False)),
        api_key_source=str(props.get("ApiKeySourceType", "HEADER")),
        binary_media_types=tuple(str(t) for t in props.get("BinaryMediaTypes") or ()),
        usage_plan=usage_plan,
        gateway_responses=responses,
    )


@cache
def load_template(path: Path = ROOT / "template.yaml") -> StackTemplate:
    doc: dict[str, Any] = yaml_parse(path.read_text())
    resources: dict[str, Any] = doc["Resources"]
    apis = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Api"]
    stage = str(resources[apis[0]]["Properties"]["StageName"]) if apis else "Prod"
    parameters = {name: p.get("Default") for name, p in (doc.get("Parameters") or {}).items()}
    globals_fn: dict[str, Any] = doc.get("Globals", {}).get("Function", {})
    routes: list[Route] = []
    functions: dict[str, FunctionSpec] = {}
    state_machines: dict[str, StateMachineSpec] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            sm = resource["Properties"]
            state_machines[logical_id] = StateMachineSpec(
                logical_id=logical_id,
                definition_path=ROOT / sm["DefinitionUri"],
                substitutions=dict(sm.get("DefinitionSubstitutions") or {}),
                type=cast(Literal["STANDARD", "EXPRESS"], str(sm.get("Type", "STANDARD")).upper()),
            )
            continue
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        spec = FunctionSpec(
            logical_id=logical_id,
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            environment=props.get("Environment", {}).get("Variables", {}),
            timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
        )
        functions[logical_id] = spec
        for event in props.get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            ev = event["Properties"]
            streaming = ev.get("ResponseTransferMode") == "RESPONSE_STREAM"
            routes.append(Route(ev["Method"].upper(), ev["Path"], spec, streaming))
    # API Gateway prefers a literal segment over a {param} at the same position: sort each path's segments as
    # (literal < param) so /responses/{id}/cancel is tried before /responses/{id}, and /a/b before /a/{x}.
    routes.sort(key=lambda r: ([seg.startswith("{") for seg in r.path.strip("/").split("/")], r.path, r.method))
    tables = [(name, r) for name, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"]
    return StackTemplate(
        stage=stage,
        routes=routes,
        table_properties=tables[0][1]["Properties"],
        functions=functions,
        state_machines=state_machines,
        table_id=tables[0][0],
        parameters=parameters,
        api=_api_spec(apis[0] if apis else None, resources, functions, parameters),
        websocket=_websocket_spec(resources, functions),
        buckets={
            name: {k: _resolve(v, parameters) for k, v in (r.get("Properties") or {}).items()}
            for name, r in resources.items()
            if r["Type"] == "AWS::S3::Bucket"
        },
    )
