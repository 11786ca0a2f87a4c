"""Fine-tune: train MiniLM on leakage-free code/docstring pairs with mined hard negatives, then use it as a dense model."""
import logging
import math
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.catalog import list_datasets, open_dataset
from core.errors import WorkbenchError
from core.training.finetune import (DEFAULT_OUTPUT, DEFAULT_PACKAGES, MINING_METHODS,
                                    TrainingStep, add_dense_profile, check_model_name, describe_training, finetune,
                                    leakage_summaries, leakage_table, open_prepared, read_finetune_info)
from core.training.preparation import TrainingSources, check_queries_fit_direction, prepare_examples
from core.training.queries import QUERY_GENERATORS, make_generator
from core.training.recipes import RECIPES, Recipe, get_recipe, recipe_settings
from core.workspace import slug
from ui.render import escape_markdown
from ui.state import current_selection

CUSTOM = "custom (the fields below)"

st.title("Fine-tune a bi-encoder")
sel = current_selection()
if sel is None:
    st.stop()
workspace = sel.workspace

st.markdown(
    "Pairs come from the documented functions of installed packages (docstring or a generated search query → code, or "
    "code without its docstring → docstring). "
    "Every training query and corpus document is audited against every query and document of the eval sets (exact text "
    "and MinHash near-duplicates, judged or not) and what overlaps is dropped, so no eval text is trained on, not even as "
    "a negative. Hard negatives are mined with BM25 or MiniLM from the same corpus. Training uses "
    "MultipleNegativesRankingLoss (GradCache, so memory stays flat) on every CPU core, or on a GPU when there is one; "
    "the saved weights can be averaged with the base model's (WiSE-FT), which keeps what it did well elsewhere."
)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "…"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def form_fields(recipe: Recipe | None) -> dict[str, object]:
    """The form's field values for a recipe's settings; without one, the plain settings and an empty base weight."""
    settings = recipe_settings(recipe)
    return {"ft_examples": settings["max_examples"], "ft_negatives": settings["negatives"], "ft_epochs": settings["epochs"],
            "ft_batch": settings["batch_size"], "ft_queries": settings["queries"], "ft_checkpoint": settings["checkpoint_every"] or 0,
            "ft_base_weight": settings["base_weight"] if recipe else None}


# The form's fields start at the plain settings; choosing a recipe (outside the form, so the page reruns) fills them
# with the recipe's, which can still be changed before training. Values go through session state, not value=, so a
# recipe can set them without Streamlit's "default value and Session State" warning.
for field, value in form_fields(None).items():
    st.session_state.setdefault(field, value)


def apply_recipe() -> None:
    """Fill the form with the chosen recipe's settings (custom: the plain ones)."""
    name = st.session_state["ft_recipe"]
    st.session_state.update(form_fields(get_recipe(name) if name != CUSTOM else None))


eval_names = [info.name for info in list_datasets(workspace) if info.origin != "builtin"]
recipe_name = st.selectbox("Recipe", [CUSTOM, *RECIPES], key="ft_recipe", on_change=apply_recipe,
                           help="code-v1: Python packages plus Debian's Go, JavaScript, Ruby, PHP and Java sources, template "
                                "queries, 3 epochs. code-v2: the same sources as code -> docstring pairs, batch 256, weights "
                                "averaged with the base model's. Choosing a recipe fills the fields below with its settings, "
                                "which you can still change; the recipe also sets the sources, the pairs' direction and the "
                                "learning rate. Changing it reruns the page, which stops a training in progress (a run with "
                                "checkpoints resumes when started again).")
with st.form("finetune"):
    packages = st.multiselect("Training packages (custom)", list(DEFAULT_PACKAGES), default=list(DEFAULT_PACKAGES[:4]), key="ft_packages")
    audit_against = st.multiselect("Audit against (eval sets)", eval_names, default=eval_names, key="ft_audit")
    left, middle, right = st.columns(3)
    output = left.text_input("Model name", value=DEFAULT_OUTPUT, key="ft_output")
    max_examples = middle.number_input("Examples", min_value=16, max_value=200_000, step=16, key="ft_examples")
    negatives = right.number_input("Hard negatives per example", min_value=0, max_value=10, key="ft_negatives")
    mining = left.selectbox("Mining", MINING_METHODS, index=0, key="ft_mining")
    epochs = middle.number_input("Epochs", min_value=1, max_value=10, key="ft_epochs")
    batch_size = right.number_input("Batch size", min_value=2, max_value=1024, key="ft_batch",
                                    help="In-batch negatives: larger batches train a stronger contrast, smaller ones fit small sets.")
    queries = left.selectbox("Training queries", QUERY_GENERATORS, key="ft_queries",
                             help="docstring: the docstring is the query. template: short search-style queries from the "
                                  "docstring's first sentence and the function's name. openai: an OpenAI-compatible endpoint. "
                                  "Generated queries are kept only when BM25 finds their function in the top 10.")
    endpoint = middle.text_input("Endpoint (openai)", placeholder="http://127.0.0.1:8000/v1", key="ft_endpoint")
    query_model = right.text_input("Endpoint model (openai)", key="ft_query_model")
    checkpoint_every = left.number_input("Checkpoint every N steps (0: none)", min_value=0, max_value=100_000, key="ft_checkpoint",
                                         help="A run stopped midway resumes from its last checkpoint when started again with the same settings.")
    base_weight = middle.number_input("Base model's weight (WiSE-FT)", min_value=0.0, max_value=0.95, step=0.05,
                                      placeholder="the recipe's, or 0", key="ft_base_weight",
                                      help="Save the trained weights averaged with the base model's: W of the base, 1 - W of the "
                                           "trained ones. Keeps what the base did well outside the training data (cosqa's web "
                                           "queries, say). Empty: the recipe's weight, or 0 (the trained weights).")
    prepared = st.text_input("Prepared examples (optional)", placeholder="/path/to/code-v1.jsonl.xz", key="ft_prepared",
                             help="A file written by `python -m core finetune --save-examples FILE`, here or on another machine: "
                                  "training starts at once, on every example of the file; the packages, audit, examples, "
                                  "negatives, mining and query fields are not used, and the file's leakage audit is what the model "
                                  "records. Epochs, batch size, checkpoints and base weight are taken from the fields; the recipe "
                                  "the file was prepared with sets the learning rate, the mini-batch and, when that field is empty, "
                                  "the base weight.")
    overwrite = st.checkbox("Replace a model of the same name", key="ft_overwrite")
    start = st.form_submit_button("Train", type="primary", key="ft_train")

if start:
    try:
        check_model_name(workspace, output, overwrite)  # before minutes of auditing and mining, not after
        recipe = get_recipe(recipe_name) if recipe_name != CUSTOM else None
        if prepared.strip():  # read before the status box opens: a bad file is one message, not a half-drawn run
            examples, data = open_prepared(Path(prepared.strip()))
            # as on the command line, the recipe the file was prepared with sets what the form does not show
            recipe = get_recipe(data["recipe"]) if data.get("recipe") in RECIPES else recipe
        settings = recipe_settings(recipe)  # what the form does not show: direction, learning rate, mini-batch
        if not prepared.strip():  # a prepared file's queries and audit are already made
            check_queries_fit_direction(str(settings["direction"]), queries)
            generator = make_generator(queries, endpoint=endpoint.strip() or None, model=query_model.strip() or None)
        chosen_base_weight = float(base_weight) if base_weight is not None else float(settings["base_weight"])
        if not audit_against and not prepared.strip():
            st.warning("No eval set to audit against: the training pairs are not checked for leakage.")
        with st.status("Fine-tuning…", expanded=True) as status:
            stage = st.empty()
            stage_bar = st.progress(0.0)

            def show_stage(name: str, fraction: float) -> None:
                stage.write(f"{escape_markdown(name)} ({fraction:.0%})")
                stage_bar.progress(min(1.0, max(0.0, fraction)))

            if prepared.strip():
                st.write(f"Read {len(examples):,} prepared examples ({sum(len(e.negatives) for e in examples):,} mined negatives) "
                         f"from {escape_markdown(prepared.strip())}. Training (steps, loss and time left below)…")
            else:
                evals = [open_dataset(workspace, name) for name in audit_against]
                sources = TrainingSources.of_recipe(recipe, workspace) if recipe else TrainingSources.of_packages(packages)

                def say(line: str) -> None:
                    st.write(escape_markdown(line[:1].upper() + line[1:]) + ("" if line.endswith("…") else "."))

                examples, data = prepare_examples(sources, evals, workspace, name=f"{slug(output, 60)}-train",
                                                  direction=str(settings["direction"]), generator=generator,
                                                  max_examples=int(max_examples), negatives=int(negatives), mining=mining,
                                                  report=say, progress=show_stage)
                st.write("Training (steps, loss and time left below; the server log shows the same bar)…")
            step_text = st.empty()
            step_bar = st.progress(0.0)
            loss_chart = st.empty()
            losses: list[float] = []

            def show_step(step: TrainingStep) -> None:
                losses.append(step.loss)
                resumed = f" · resumed at step {step.resumed_from}" if step.resumed_from else ""
                step_text.write(f"Step {step.step:d} / {step.total_steps:d} · loss {step.loss:.3f} · "
                                f"{escape_markdown(_duration(step.seconds))} elapsed · about {escape_markdown(_duration(step.eta_seconds))} left{escape_markdown(resumed)}")
                step_bar.progress(step.step / step.total_steps)
                loss_chart.line_chart(pd.DataFrame({"loss": losses}, index=range(step.resumed_from + 1, step.step + 1)), height=180)

            folder = finetune(examples, workspace, output_name=output, epochs=int(epochs), batch_size=int(batch_size),
                              max_examples=None if prepared.strip() else int(max_examples), progress=True, data=data | (recipe.record() if recipe and not prepared.strip() else {}),
                              overwrite=overwrite, checkpoint_every=int(checkpoint_every) or None, on_step=show_step,
                              base_weight=chosen_base_weight, learning_rate=float(settings["learning_rate"]),
                              mini_batch_size=int(settings["mini_batch_size"]),
                              report=lambda line: st.warning(escape_markdown(line)))  # a checkpoint set aside, said here
            profile = add_dense_profile(workspace, output)
            status.update(label=f"Saved {output}", state="complete", expanded=True)
        info = read_finetune_info(folder)
        st.success(f"Saved to {escape_markdown(str(folder))}; added the dense profile **{escape_markdown(profile)}** "
                   "(pick it in the sidebar).")
        st.info(escape_markdown(describe_training(info)))
        leakage = leakage_summaries(data)
        if leakage:
            st.markdown("**Leakage audit**: overlaps found per eval set, each kind counted separately; every one was dropped.")
            # One row per kind of overlap, one column per eval set: narrow enough to read without scrolling.
            table = leakage_table(leakage).T
            st.dataframe(table, width="stretch", height=35 * (len(table) + 1) + 3, key="ft_leakage_table")  # every row shown
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    except Exception as exc:  # torch, disk or tokenizer failures: a short message here, the traceback in the server log
        logging.getLogger(__name__).exception("fine-tuning failed")
        st.error(f"Fine-tuning failed ({type(exc).__name__}): {escape_markdown(str(exc)[:500])}. Nothing was saved; "
                 "the server log has the details.")

st.subheader("Fine-tuned models in this workspace")
rows = []
for folder in sorted(p for p in workspace.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) if workspace.models_dir.is_dir() else []:
    info = read_finetune_info(folder)
    if info:
        rows.append({"model": folder.name, "base": info.get("base_model", ""), "examples": info.get("examples", ""),
                     "trained": info.get("examples_trained", ""), "steps": info.get("steps", ""),
                     "last loss": info.get("loss_last", ""), "peak MB": info.get("peak_rss_mb", ""),
                     "base weight": (info.get("params") or {}).get("base_weight", 0.0),
                     "device": (info.get("machine") or {}).get("gpu") or (info.get("machine") or {}).get("device", ""),
                     "seconds": info.get("seconds", ""),  # of the last call: a resumed run counts from its checkpoint
                     "resumed at step": info.get("resumed_from_step") or None, "created": info.get("created", "")})
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.caption("None yet. `python -m core finetune --packages sklearn,numpy --output my-model --add-profile` trains one from the terminal.")
