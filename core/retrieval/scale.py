"""The Ray engine behind ``index --engine ray`` and the Datasets page: corpus embeddings for the profiles that need them."""
from __future__ import annotations

from collections.abc import Sequence

from core.index.distributed import RayOptions, embed_corpus
from core.index.lexical import BuildReport
from core.retrieval.engine import Engine
from core.retrieval.profiles import DenseProfile, HybridProfile, RerankProfile

ENGINES = ("local", "ray")


def dense_models(engine: Engine, names: Sequence[str]) -> list[tuple[str, str]]:
    """(model, backend) of every corpus embedding the named profiles read, in first-use order."""
    found: list[tuple[str, str]] = []

    def visit(name: str) -> None:
        profile = engine.profile(name)
        if isinstance(profile, DenseProfile):
            key = (profile.model, profile.backend)
        elif isinstance(profile, HybridProfile):
            for member in profile.members:
                visit(member)
            return
        elif isinstance(profile, RerankProfile):
            visit(profile.first_stage)
            if profile.reranker == "cross-encoder":
                return
            key = (profile.model, "torch")
        else:
            return
        if key not in found:
            found.append(key)

    for name in names:
        visit(name)
    return found


def embed_with_ray(engine: Engine, names: Sequence[str], options: RayOptions, rebuild: bool = False) -> list[BuildReport]:
    """Embed the corpus on Ray for every model the named profiles need; the engine then opens those tables as its own."""
    reports = []
    for model, backend in dense_models(engine, names):
        stage = f"embedding corpus on Ray ({model})"
        progress = (lambda fraction, stage=stage: engine.progress(stage, fraction)) if engine.progress else None
        _, report = embed_corpus(engine.workspace, engine.dataset, engine.encoder(model, backend), options, rebuild, progress)
        reports.append(report)
    return reports
