#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests (a multi-document YAML on stdin) and prints one JSON report.

Built-in kinds are checked by kubernetes-validate against the strict schemas (unknown fields refused) of
each Kubernetes version given. Custom resources (ServiceMonitor, PrometheusRule) are not in those
schemas: they are checked against the openAPIV3Schema of their CustomResourceDefinition, read from
--crds, made strict the way `kubectl apply`'s field validation is (an unknown field is an error unless
the schema preserves unknown fields). A kind found in neither is an error, never a silent pass.

Runs in the venv install-services.sh makes (kubernetes-validate, its jsonschema and PyYAML).
usage: validate-k8s-manifests.py --kube-versions-from 1.25 --crds DIR < manifests.yaml
(every Kubernetes minor version kubernetes-validate ships, from the given one on)
"""
import argparse
import copy
import json
import pathlib
import sys

import jsonschema
import yaml
from packaging.version import Version
from kubernetes_validate import utils


def strict(schema):
    """A copy of a structural schema in which objects with listed properties refuse any other."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ('properties' in node and 'additionalProperties' not in node
                    and not node.get('x-kubernetes-preserve-unknown-fields')):
                node['additionalProperties'] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_crds(directory):
    """(apiVersion, kind) -> (validator, CRD name) for every served version of every CRD in the directory."""
    found = {}
    for path in sorted(pathlib.Path(directory).glob('*.yaml')):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get('kind') != 'CustomResourceDefinition':
                continue
            spec = crd['spec']
            for version in spec['versions']:
                schema = strict(version['schema']['openAPIV3Schema'])
                key = ('%s/%s' % (spec['group'], version['name']), spec['names']['kind'])
                found[key] = (jsonschema.Draft7Validator(schema), crd['metadata']['name'])
    return found


def error_text(error):
    path = '.'.join(str(p) for p in error.absolute_path) or '(top level)'
    return '%s: %s' % (path, error.message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--kube-versions-from', required=True)
    parser.add_argument('--crds', required=True)
    args = parser.parse_args()
    oldest = Version(args.kube_versions_from)
    shipped = {utils.major_minor(v) for v in utils.all_versions()}  # each version has a strict and a lax dir
    versions = sorted((v for v in shipped if Version(v) >= oldest), key=Version)
    crds = load_crds(args.crds)
    report = []
    for doc in yaml.safe_load_all(sys.stdin):
        if not doc:
            continue
        checks = []
        crd = crds.get((doc.get('apiVersion'), doc.get('kind')))
        if crd:
            validator, name = crd
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            checks.append({'against': 'CRD ' + name, 'errors': [error_text(e) for e in errors]})
        else:
            for version in versions:
                against = 'Kubernetes ' + version
                try:
                    utils.validate(doc, version, strict=True)
                    checks.append({'against': against, 'errors': []})
                except utils.ValidationError as e:
                    checks.append({'against': against, 'errors': [error_text(e)]})
                except utils.SchemaNotFoundError as e:
                    checks.append({'against': against, 'errors': [e.message]})
        report.append({'apiVersion': doc.get('apiVersion'), 'kind': doc.get('kind'),
                       'name': (doc.get('metadata') or {}).get('name'), 'checks': checks})
    json.dump(report, sys.stdout, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
