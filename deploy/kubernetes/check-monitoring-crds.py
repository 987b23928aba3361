"""Validates the monitoring.coreos.com/v1 objects (PodMonitor, ServiceMonitor, ...) of a rendered
kustomize stream on stdin, which kubernetes-validate has no schema for: against the
prometheus-operator CRDs' models (pip install cloudcoil-models-prometheus-operator), strictly:
any field the CRD does not define is an error too (the models alone would accept it).

    kubectl kustomize deploy/kubernetes/overlays/production | python3 deploy/kubernetes/check-monitoring-crds.py
"""
import sys, typing, yaml
from pydantic import BaseModel
from cloudcoil.models.prometheus_operator import v1

def models_in(annotation):
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []
    out = []
    for arg in typing.get_args(annotation):
        out += models_in(arg)
    return out

def unknown(model, data, path):
    errors = []
    if not isinstance(data, dict):
        return errors
    fields = {}
    for name, info in model.model_fields.items():
        fields[info.alias or name] = info
        fields[name] = info
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not in the schema")
            continue
        for sub in models_in(fields[key].annotation):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    errors += unknown(sub, item, f"{path}.{key}[{i}]")
            else:
                errors += unknown(sub, value, f"{path}.{key}")
            break
    return errors

failed = checked = 0
for doc in yaml.safe_load_all(sys.stdin):
    if not doc or not str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
        continue
    model = getattr(v1, doc["kind"], None)
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    try:
        model.model_validate(doc)
        errors = unknown(model, doc, doc["kind"])
    except Exception as error:
        errors = [str(error)]
    if errors:
        failed += 1
        print("ERROR", name, *errors, sep="\n  ")
    else:
        checked += 1
        print("OK", name)
print(f"{checked} valid, {failed} invalid")
sys.exit(1 if failed else 0)
