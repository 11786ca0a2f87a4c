"""Plotly figures of the diagnosis pages: UpSet chart, weight sweep against the oracle, slices, embedding map.

Figures only: every number they draw comes from ``core`` tables passed in. Text from datasets goes into
hover labels, which Plotly reads as HTML, so it is escaped here.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SOLVED_COLOUR = "#1f3b73"
UNSOLVED_COLOUR = "#d9d9d9"


def upset_chart(intersections: pd.DataFrame, profiles: Sequence[str], title: str = "") -> go.Figure:
    """UpSet: bars of how many queries each combination of solving profiles holds, the combination as dots below."""
    profiles = list(profiles)
    positions = list(range(len(intersections)))
    names = [" + ".join(p for p in profiles if row[p]) or "none" for _, row in intersections.iterrows()]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.03)
    figure.add_trace(go.Bar(x=positions, y=intersections["queries"], text=intersections["queries"], textposition="outside",
                            marker_color=SOLVED_COLOUR, hovertext=[html.escape(n) for n in names],
                            hovertemplate="%{hovertext}: %{y} queries<extra></extra>", showlegend=False), row=1, col=1)
    for position, (_, row) in zip(positions, intersections.iterrows()):
        solving = [p for p in profiles if row[p]]
        if len(solving) > 1:
            figure.add_trace(go.Scatter(x=[position] * len(solving), y=solving, mode="lines", hoverinfo="skip",
                                        line={"color": SOLVED_COLOUR, "width": 3}, showlegend=False), row=2, col=1)
    for profile in profiles:
        solved = intersections[profile].to_numpy(dtype=bool)
        figure.add_trace(go.Scatter(x=positions, y=[profile] * len(positions), mode="markers", hoverinfo="skip",
                                    marker={"size": 14, "color": np.where(solved, SOLVED_COLOUR, UNSOLVED_COLOUR)},
                                    showlegend=False), row=2, col=1)
    figure.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    figure.update_yaxes(title_text="queries", range=[0, max(1, int(intersections["queries"].max())) * 1.18], row=1, col=1)
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(profiles)), row=2, col=1)
    figure.update_layout(title=title or None, height=260 + 34 * len(profiles), margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return figure


def sweep_against_oracle(points: pd.DataFrame, oracle: float, members: Sequence[tuple[str, float]], metric_label: str,
                         weight_of: str) -> go.Figure:
    """The swept weight against the metric it reached, with the oracle (and each member) as horizontal lines."""
    figure = go.Figure(go.Scatter(x=points["value"], y=points["metric_value"], mode="lines+markers", name="weighted fusion",
                                  hovertemplate="w = %{x}<br>" + metric_label + " %{y:.4f}<extra></extra>"))
    figure.add_hline(y=oracle, line={"dash": "dash", "color": "#d62728"}, annotation_text=f"oracle {oracle:.4f}",
                     annotation_position="top left")
    for name, mean in members:
        figure.add_hline(y=mean, line={"dash": "dot", "color": "grey"}, annotation_text=html.escape(f"{name} {mean:.4f}"),
                         annotation_position="bottom right")
    figure.update_layout(xaxis_title=f"weight of {html.escape(weight_of)} (the other member gets 1 − w)",
                         yaxis_title=metric_label, height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def slice_chart(found: pd.DataFrame) -> go.Figure:
    """Horizontal bars of each slice's effect, darker when significant, the query count in the hover."""
    ordered = found.iloc[::-1]
    colours = np.where(ordered["significant"], "#d62728", "#f4a6a6")
    figure = go.Figure(go.Bar(x=ordered["effect"], y=[html.escape(s) for s in ordered["slice"]], orientation="h",
                              marker_color=colours, customdata=np.stack([ordered["queries"], ordered["p (Holm)"]], axis=1),
                              hovertemplate="%{y}<br>effect %{x:+.4f}<br>%{customdata[0]} queries, "
                                            "p (Holm) %{customdata[1]:.2g}<extra></extra>"))
    figure.update_layout(xaxis_title="effect (how much worse than overall)", height=120 + 24 * len(found),
                         margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


def embedding_map_figure(points: pd.DataFrame, colour_by: str = "rank", k: int = 10, selected: str | None = None,
                         depth: int = 100) -> go.Figure:
    """WebGL scatter: documents grey, queries coloured by the positive's rank (or hit@k), a line from ``selected`` to its positive.

    Every point carries its id as customdata, so a selection names the query or document picked.
    """
    documents = points[points["kind"] == "document"]
    queries = points[points["kind"] == "query"]
    figure = go.Figure()
    figure.add_trace(go.Scattergl(x=documents["x"], y=documents["y"], mode="markers", name="documents",
                                  marker={"size": 4, "color": "#bdbdbd", "opacity": 0.6}, customdata=documents["id"],
                                  hovertext=[html.escape(t) for t in documents["hover"]],
                                  hovertemplate="document %{customdata}<br>%{hovertext}<extra></extra>"))
    hover = [html.escape(t) for t in queries["hover"]]
    if colour_by == "hit":
        for hit, colour, name in ((True, "#2ca02c", f"query: hit@{k}"), (False, "#d62728", f"query: miss@{k}")):
            part = queries["hit"] == hit
            figure.add_trace(go.Scattergl(x=queries.loc[part, "x"], y=queries.loc[part, "y"], mode="markers", name=name,
                                          marker={"size": 7, "color": colour}, customdata=queries.loc[part, "id"],
                                          hovertext=[h for h, p in zip(hover, part) if p],
                                          hovertemplate="query %{customdata}<br>%{hovertext}<extra></extra>"))
    else:
        not_found = 2 * depth  # drawn past the deepest rank, so "not retrieved" has its own end of the scale
        ranks = queries["positive_rank"].fillna(not_found).clip(upper=not_found)
        ticks = [rank for rank in (1, 10, 100, 1000) if rank <= depth]
        figure.add_trace(go.Scattergl(x=queries["x"], y=queries["y"], mode="markers", name="queries",
                                      marker={"size": 7, "color": np.log10(ranks), "colorscale": "Viridis_r", "cmin": 0,
                                              "cmax": float(np.log10(not_found)),
                                              "colorbar": {"title": {"text": "positive's rank", "side": "right"},
                                                           "tickvals": [*np.log10(ticks), float(np.log10(not_found))],
                                                           "ticktext": [*map(str, ticks), "not retrieved"]}},
                                      customdata=queries["id"], text=queries["positive_rank"].map(
                                          lambda r: "not retrieved" if pd.isna(r) else f"rank {int(r)}"),
                                      hovertext=hover,
                                      hovertemplate="query %{customdata} (%{text})<br>%{hovertext}<extra></extra>"))
    if selected is not None and selected in set(queries["id"]):
        query = queries[queries["id"] == selected].iloc[0]
        positive = documents[documents["id"] == query["positive_id"]]
        if not positive.empty:
            figure.add_trace(go.Scattergl(x=[query["x"], positive.iloc[0]["x"]], y=[query["y"], positive.iloc[0]["y"]],
                                          mode="lines+markers", name="query → positive", hoverinfo="skip",
                                          line={"color": "#ff7f0e", "width": 3}, marker={"size": 12, "color": "#ff7f0e"}))
    figure.update_layout(height=620, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="pan",
                         legend={"orientation": "h", "y": -0.08}, xaxis={"title": "component 1"},
                         yaxis={"title": "component 2", "scaleanchor": "x"})
    return figure
