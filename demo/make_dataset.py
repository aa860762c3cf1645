"""Regenerate demo/data/*.jsonl: travel requests -> a compact JSON booking, a format the base model
does not produce by itself, so the predictions visibly change from epoch to epoch.

    python demo/make_dataset.py
"""

import json
import random
from pathlib import Path

CITIES = [
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Berlin", "DE"),
    ("Munich", "DE"),
    ("Madrid", "ES"),
    ("Seville", "ES"),
    ("Rome", "IT"),
    ("Milan", "IT"),
    ("Lisbon", "PT"),
    ("Porto", "PT"),
    ("Vienna", "AT"),
    ("Prague", "CZ"),
    ("Warsaw", "PL"),
    ("Dublin", "IE"),
    ("Oslo", "NO"),
    ("Stockholm", "SE"),
    ("Helsinki", "FI"),
    ("Athens", "GR"),
    ("Tokyo", "JP"),
    ("Osaka", "JP"),
    ("Seoul", "KR"),
    ("Toronto", "CA"),
    ("Boston", "US"),
    ("Denver", "US"),
]
TEMPLATES = [
    "I need a hotel in {city} for {nights} nights.",
    "Book me {nights} nights in {city}, please.",
    "Can you find a room in {city}? I'm staying {nights} nights.",
    "Planning a trip to {city} - {nights} nights in total.",
    "We'll be in {city} for {nights} nights next month; find us somewhere to stay.",
    "Reserve accommodation in {city}, {nights} nights.",
]
SYSTEM = "Turn the travel request into a booking as compact JSON with keys city, country, nights."


def row(city: str, country: str, nights: int, template: str) -> dict:
    answer = json.dumps({"city": city, "country": country, "nights": nights}, separators=(",", ":"))
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": template.format(city=city, nights=nights)},
            {"role": "assistant", "content": answer},
        ]
    }


def main() -> None:
    rng = random.Random(2026)
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    train = [row(c, cc, rng.randint(1, 14), rng.choice(TEMPLATES)) for c, cc in CITIES for _ in range(4)]
    rng.shuffle(train)
    held_out = [
        ("Nice", "FR"),
        ("Kyoto", "JP"),
        ("Bologna", "IT"),
        ("Hamburg", "DE"),
        ("Chicago", "US"),
        ("Bergen", "NO"),
        ("Krakow", "PL"),
        ("Valencia", "ES"),
    ]
    samples = [row(c, cc, rng.randint(1, 14), rng.choice(TEMPLATES)) for c, cc in held_out]
    for name, rows in (("train.jsonl", train), ("samples.jsonl", samples)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
