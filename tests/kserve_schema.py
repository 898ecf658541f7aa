"""KServe's API as a schema: the kserve SDK's generated types, read from its source (never
imported: the SDK pulls in a server), with Kubernetes' own types checked against
kubernetes-validate's strict JSON schemas."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import jsonschema
from referencing import Registry, Resource

KUBERNETES = "1.37.0"
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


@lru_cache(maxsize=None)
def kserve_types() -> Dict[str, Tuple[dict, dict]]:
    """Class name -> (openapi_types, attribute_map) of every model in ``kserve.models``."""
    models = Path(importlib.util.find_spec("kserve").submodule_search_locations[0]) / "models"
    found = {}
    for path in models.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                tables = {t.targets[0].id: ast.literal_eval(t.value) for t in node.body
                          if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)
                          and t.targets[0].id in ("openapi_types", "attribute_map")}
                if len(tables) == 2:
                    found[node.name] = (tables["openapi_types"], tables["attribute_map"])
    return found


def problems(value, type_name: str, path: str = "") -> List[str]:
    """What in ``value`` does not fit ``type_name`` (a kserve SDK type string)."""
    listed = re.fullmatch(r"list\[(.+)\]", type_name)
    mapped = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if listed:
        if not isinstance(value, list):
            return [f"{path}: a list expected"]
        return [p for i, item in enumerate(value) for p in problems(item, listed[1], f"{path}[{i}]")]
    if mapped:
        if not isinstance(value, dict):
            return [f"{path}: a mapping expected"]
        return [p for k, item in value.items() for p in problems(item, mapped[1], f"{path}.{k}")]
    if type_name in SCALARS:
        return [] if isinstance(value, SCALARS[type_name]) else [f"{path}: {type_name} expected"]
    if type_name in kserve_types():
        if not isinstance(value, dict):
            return [f"{path}: an object expected"]
        types, names = kserve_types()[type_name]
        fields = {wire: types[attr] for attr, wire in names.items()}
        found = [f"{path}.{k}: not a field of {type_name}" for k in value if k not in fields]
        return found + [p for k, item in value.items() if k in fields
                        for p in problems(item, fields[k], f"{path}.{k}")]
    return kubernetes_problems(value, type_name, path)


def kubernetes_problems(value, type_name: str, path: str) -> List[str]:
    """A Kubernetes type (``V1Container``) against kubernetes-validate's strict schema."""
    schemas = (Path(importlib.util.find_spec("kubernetes_validate").submodule_search_locations[0])
               / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict")
    name = type_name.removeprefix("V1").lower()
    files = sorted(schemas.glob(f"{name}-*v1.json"))
    if not files:
        return [f"{path}: no schema for {type_name}"]
    schema = json.loads(files[0].read_text())
    registry = Resource.from_contents(json.loads((schemas / "_definitions.json").read_text())) \
        @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
    return [f"{path}.{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(value)]
