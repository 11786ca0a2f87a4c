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
    figure.update_yaxes(title_text="queries", row=1, col=1)
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
