"""Strict ``json_schema`` formats: checked as JSON Schema (2020-12) when the request arrives, then applied to the
model's answer, with references resolved only inside the schema itself.

jsonschema's default resolver fetches ``http://`` and ``file://`` references (no timeout, on the event loop) and
a failing fetch put the fetched text into the error; here every validator gets a ``referencing.Registry`` whose
retrieval refuses everything, and a request whose ``$ref`` is not a local one (``#…``) or does not resolve is a
400 before anything runs. jsonschema is imported only by requests with a strict schema.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from referencing import Registry, Resource

__all__ = ["check_strict_schema", "schema_mismatch"]

_REF_KEYS = ("$ref", "$dynamicRef")
# One value of each JSON type: a schema whose references loop without end does so for one of them.
_PROBES: tuple[object, ...] = (None, True, 0, "", [], {})


def _refuse(uri: str) -> Resource[Any]:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class


@cache
def _registry() -> Registry[Any]:
    from referencing import Registry

    return Registry(retrieve=_refuse)  # type: ignore[call-arg]  # an attrs class


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _references(schema: Any) -> list[str]:
    """Every ``$ref`` / ``$dynamicRef`` in the schema (iteratively: the depth is the client's)."""
    found: list[str] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            found += [str(node[key]) for key in _REF_KEYS if isinstance(node.get(key), str)]
            pending += list(node.values())
        elif isinstance(node, list):
            pending += node
    return found


def check_strict_schema(schema: dict[str, Any]) -> None:
    """``ValueError`` saying what is wrong when ``schema`` is not a JSON Schema this server can apply."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise ValueError(f"not valid JSON Schema at {where}: {exc.message}") from None
    except RecursionError:
        raise ValueError("the JSON schema is nested too deeply") from None
    resolver = _validator(schema)._resolver
    for ref in _references(schema):
        if not ref.startswith("#"):
            raise ValueError(f"'$ref' {ref!r} is not allowed: references must point inside the schema ('#…')")
        try:
            resolver.lookup(ref)
        except Exception:  # referencing's Unresolvable and its kin: the reference names nothing in the schema
            raise ValueError(f"'$ref' {ref!r} does not resolve inside the schema") from None
    validator = _validator(schema)
    for probe in _PROBES:
        try:
            for _ in validator.iter_errors(probe):
                pass
        except RecursionError:
            raise ValueError(
                "a '$ref' cycle that never reaches a value: the schema refers to itself without end"
            ) from None
        except Exception:  # a probe only looks for cycles; any other complaint is no concern here
            pass


def schema_mismatch(schema: dict[str, Any], value: Any) -> str | None:
    """Where and how ``value`` breaks ``schema`` (None when it conforms). A schema that cannot be applied (one
    that refers to itself without end, say) is reported as a mismatch, never raised."""
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(value))
    except RecursionError:
        return "the JSON schema refers to itself without end"
    except Exception as exc:  # any failure to apply the schema fails the response with its reason, never a 500
        return f"the JSON schema could not be applied ({type(exc).__name__})"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message}"
