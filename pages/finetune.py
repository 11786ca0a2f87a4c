"""Fine-tune: train MiniLM on leakage-free code/docstring pairs with mined hard negatives, then use it as a dense model."""
import logging

import pandas as pd
import streamlit as st

from core.data.catalog import list_datasets, open_dataset
from core.errors import WorkbenchError
from core.training.finetune import (DEFAULT_MAX_EXAMPLES, DEFAULT_OUTPUT, DEFAULT_PACKAGES, MINING_METHODS, add_dense_profile,
                           build_training_set, check_model_name, finetune, package_roots, read_finetune_info,
                           sample_and_mine)
from core.workspace import slug
from ui.render import escape_markdown
from ui.state import current_selection

st.title("Fine-tune a bi-encoder")
sel = current_selection()
if sel is None:
    st.stop()
workspace = sel.workspace

st.markdown(
    "Pairs come from the documented functions of installed packages (docstring → code), audited against the eval "
    "sets with the leakage audit so no eval pair is trained on; hard negatives are mined with BM25 or MiniLM from the "
    "same corpus, near-copies of the answer dropped. Training uses MultipleNegativesRankingLoss on the CPU: the "
    "defaults take minutes. The model is saved in the workspace and added as a dense profile."
)

eval_names = [info.name for info in list_datasets(workspace) if info.origin != "builtin"]
with st.form("finetune"):
    packages = st.multiselect("Training packages", list(DEFAULT_PACKAGES), default=list(DEFAULT_PACKAGES[:4]), key="ft_packages")
    audit_against = st.multiselect("Audit against (eval sets)", eval_names, default=eval_names, key="ft_audit")
    left, middle, right = st.columns(3)
    output = left.text_input("Model name", value=DEFAULT_OUTPUT, key="ft_output")
    max_examples = middle.number_input("Examples", min_value=16, max_value=20_000, value=DEFAULT_MAX_EXAMPLES, step=16, key="ft_examples")
    negatives = right.number_input("Hard negatives per example", min_value=0, max_value=10, value=3, key="ft_negatives")
    mining = left.selectbox("Mining", MINING_METHODS, index=0, key="ft_mining")
    epochs = middle.number_input("Epochs", min_value=1, max_value=10, value=1, key="ft_epochs")
    batch_size = right.number_input("Batch size", min_value=2, max_value=256, value=32, key="ft_batch",
                                    help="In-batch negatives: larger batches train a stronger contrast, smaller ones fit small sets.")
    overwrite = st.checkbox("Replace a model of the same name", key="ft_overwrite")
    start = st.form_submit_button("Train", type="primary", key="ft_train")

if start:
    try:
        check_model_name(workspace, output, overwrite)  # before minutes of auditing and mining, not after
        if not audit_against:
            st.warning("No eval set to audit against: the training pairs are not checked for leakage.")
        with st.status("Fine-tuning…", expanded=True) as status:
            st.write("Building training pairs and auditing them for leakage…")
            evals = [open_dataset(workspace, name) for name in audit_against]
            training = build_training_set(package_roots(packages), evals, name=f"{slug(output, 60)}-train")
            for summary in training.leakage:
                st.write(f"Leakage vs {escape_markdown(summary.eval)}: dropped {summary.dropped_train_queries:d} training queries.")
            n_examples = min(int(max_examples), len(training.dataset.judged_queries))
            st.write(f"Mining {int(negatives):d} hard negatives for {n_examples:d} examples ({escape_markdown(mining)})…")
            examples, data = sample_and_mine(training, workspace, int(max_examples), int(negatives), mining)
            st.write("Training (see the progress in the server log)…")
            folder = finetune(examples, workspace, output_name=output, epochs=int(epochs), batch_size=int(batch_size), max_examples=int(max_examples),
                              progress=False, data=data, overwrite=overwrite)
            profile = add_dense_profile(workspace, output)
            status.update(label=f"Saved {output}", state="complete")
        st.success(f"Saved to {escape_markdown(str(folder))}; added the dense profile **{escape_markdown(profile)}** "
                   "(pick it in the sidebar).")
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    except Exception as exc:  # torch, disk or tokenizer failures: a short message here, the traceback in the server log
        logging.getLogger(__name__).exception("fine-tuning failed")
        st.error(f"Fine-tuning failed ({type(exc).__name__}): {escape_markdown(str(exc)[:500])}. Nothing was saved; "
                 "the server log has the details.")

st.subheader("Fine-tuned models in this workspace")
rows = []
for folder in sorted(p for p in workspace.models_dir.iterdir() if p.is_dir()) if workspace.models_dir.is_dir() else []:
    info = read_finetune_info(folder)
    if info:
        rows.append({"model": folder.name, "base": info.get("base_model", ""), "examples": info.get("examples", ""),
                     "seconds": info.get("seconds", ""), "created": info.get("created", "")})
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.caption("None yet. `python -m core finetune --packages sklearn,numpy --output my-model --add-profile` trains one from the terminal.")
