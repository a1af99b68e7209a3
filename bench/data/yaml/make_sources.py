"""Rebuild the YAML documents of this folder from fetched repositories (see SOURCES.md).

Not imported by the benchmark. Each document is one repository file at a recorded
commit, byte for byte; `test-k8s-examples.yaml` is the manifests of kubernetes/examples
listed below joined into one stream (`---` between files), as `kubectl apply -f` or
`kustomize build` would read them. Run it with the bare repositories under MIRROR
(`fetch` puts `owner/name` at MIRROR/owner+name/repo):

    python bench/data/yaml/make_sources.py /work/.mirror
"""

import gzip
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
K8S_EXAMPLES = [
    "AI/model-serving-tensorflow/deployment.yaml", "AI/model-serving-tensorflow/service.yaml",
    "AI/model-serving-tensorflow/ingress.yaml", "AI/model-serving-tensorflow/pv.yaml",
    "AI/model-serving-tensorflow/pvc.yaml", "AI/vllm-deployment/vllm-deployment.yaml",
    "AI/vllm-deployment/vllm-service.yaml",
    "AI/vllm-deployment/hpa/gpu-dcgm-exporter-service-generic.yaml",
    "AI/vllm-deployment/hpa/gpu-horizontal-pod-autoscaler.yaml",
    "AI/vllm-deployment/hpa/gpu-service-monitor-generic.yaml",
    "AI/vllm-deployment/hpa/horizontal-pod-autoscaler.yaml",
    "AI/vllm-deployment/hpa/prometheus-adapter.yaml", "AI/vllm-deployment/hpa/prometheus-rule.yaml",
    "AI/vllm-deployment/hpa/vllm-service-monitor.yaml",
    "databases/cassandra/cassandra-service.yaml", "databases/cassandra/cassandra-statefulset.yaml",
    "databases/mysql-cinder-pd/mysql-service.yaml", "databases/mysql-cinder-pd/mysql.yaml",
    "web/guestbook/frontend-deployment.yaml", "web/guestbook/frontend-service.yaml",
    "web/guestbook/redis-master-deployment.yaml", "web/guestbook/redis-master-service.yaml",
    "web/guestbook/redis-replica-deployment.yaml", "web/guestbook/redis-replica-service.yaml",
    "web/guestbook-go/guestbook-controller.yaml", "web/guestbook-go/guestbook-service.yaml",
    "web/guestbook-go/redis-master-controller.yaml", "web/guestbook-go/redis-master-service.yaml",
    "web/guestbook-go/redis-replica-controller.yaml", "web/guestbook-go/redis-replica-service.yaml",
]
# document name: (repository, commit, paths)
SOURCES = {
    "dev-compose-sentry.yml": (
        "getsentry/self-hosted", "89a143f8e4d396a858cf6f462a832ae7da9fd2db",
        ["docker-compose.yml"]),
    "dev-compose-otel-demo.yaml": (
        "open-telemetry/opentelemetry-demo", "054282e318317f2be09f67dd9b0d7d1278566cfa",
        ["compose.yaml"]),
    "dev-actions-pydantic-ci.yml": (
        "pydantic/pydantic", "2151025aa51263f3016502b00010b78e4481eaa1",
        [".github/workflows/ci.yml"]),
    "dev-actions-pydantic-third-party.yml": (
        "pydantic/pydantic", "2151025aa51263f3016502b00010b78e4481eaa1",
        [".github/workflows/third-party.yml"]),
    "dev-hooks-pre-commit-hooks.yaml": (
        "pre-commit/pre-commit-hooks", "f23336e5dc4bf11588d7db19f675418cf570971b",
        [".pre-commit-hooks.yaml"]),
    "test-k8s-microservices-demo.yaml": (
        "GoogleCloudPlatform/microservices-demo", "34ffea9175946982c3088ed84994fe6019ad6e92",
        ["release/kubernetes-manifests.yaml"]),
    "test-k8s-examples.yaml": (
        "kubernetes/examples", "279e8e4fe314f6cb7bc55fa3fbc21bbeaa48c0ea", K8S_EXAMPLES),
    "test-openapi-petstore.yaml": (
        "swagger-api/swagger-petstore", "f1ed336a08b18ba4a86c496147c4f546ae965a7b",
        ["src/main/resources/openapi.yaml"]),
}


def show(mirror: Path, repository: str, commit: str, path: str) -> str:
    git_dir = mirror / repository.replace("/", "+") / "repo"
    return subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def main(mirror: Path) -> None:
    for name, (repository, commit, paths) in SOURCES.items():
        texts = [show(mirror, repository, commit, path) for path in paths]
        if len(texts) == 1:
            text = texts[0]
        else:  # a stream: each file's own leading `---` dropped, one between files
            text = "".join("---\n" + t.removeprefix("---\n").rstrip("\n") + "\n" for t in texts)
        with gzip.open(HERE / f"{name}.gz", "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(text)
        print(f"{name}: {len(text.encode()):,} bytes", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
