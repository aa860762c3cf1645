"""The reward-per-step chart of bench/grpo.py as a standalone SVG (no plotting library): the total reward and each
component's mean score per training step, on a 0..1 axis."""

from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 130, 30, 40
COLORS = ("#dc2626", "#0d9488", "#ca8a04", "#4f46e5", "#db2777")
TOTAL_COLOR = "#111827"


def reward_chart_svg(points: Sequence[dict[str, Any]], components: Sequence[str], title: str) -> str:
    """`points`: per step, {"step", "reward", <component>: mean score}."""
    steps = [point["step"] for point in points] or [1]
    first, last = min(steps), max(max(steps), min(steps) + 1)

    def x(step: float) -> float:
        return LEFT + (step - first) / (last - first) * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - value * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#6b7280">{tick:g}</text>')
    for step in steps:
        parts.append(
            f'<text x="{x(step):.1f}" y="{HEIGHT - BOTTOM + 15}" text-anchor="middle" fill="#6b7280">{step}</text>'
        )
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">training step</text>')
    lines = [(name, COLORS[i % len(COLORS)], name, "") for i, name in enumerate(components)]
    lines.append(("reward", TOTAL_COLOR, "total reward", ' stroke-dasharray="5 3"'))
    for index, (key, color, label, dash) in enumerate(lines):
        coords = " ".join(f"{x(point['step']):.1f},{y(point[key]):.1f}" for point in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        legend_y, legend_x = TOP + 14 + index * 16, WIDTH - RIGHT + 10
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{legend_y - 4}" y2="{legend_y - 4}"'
            f' stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 20}" y="{legend_y}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
