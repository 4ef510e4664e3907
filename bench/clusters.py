"""Benchmark: how well and how fast the clusterer groups campaign responses, against a corpus whose truth is known.

Run from the project folder:  .venv/bin/python bench/clusters.py [--responses 10000] [--threshold 0.8] [--template-sentences 6 14]

The corpus: organic responses (sentences drawn from a grammar of what people say about a code of
conduct, so that they share stock phrases as real ones do, and some a few words long), campaigns
built from templates (from 0.05 % to 15 % of the corpus each; one template a rewrite of a third of
another's, a campaign of its own) whose members are exact copies or
personalised: a greeting and a signature with a name, a sentence of their own added, one removed,
sentences reordered, typos, in combination; and organic responses submitted again word for word.
Each response knows its true group: its campaign, its original, or itself.

It submits them to the seed consultation on a fresh SQLite store (as the API does: checked, free text
sealed, in batches), runs the clusterer over the log and compares the clusters it recorded with the
truth pairwise: precision is the share of pairs put together that belong together, recall the share
of pairs that belong together that were put together (target both >= 0.95). It prints the clusterer's
catch-up time per response (unsealing, fingerprinting, matching and recording, in batches) and, apart,
the latency of fingerprinting and matching one text against the index (p50, p99), with the recall of
each kind of personalisation.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.campaigns.similarity import Index, fingerprint  # noqa: E402
from domain.consultations.consultation import read_definition  # noqa: E402
from domain.consultations.service import Submission  # noqa: E402
from runtime import System  # noqa: E402
from runtime.settings import Settings  # noqa: E402

SEED = ROOT / "consultations" / "code-of-conduct-2026.toml"
TARGET = 0.95
BATCH = 500
TEMPLATE_SENTENCES = (6, 14)  # about 60 to 150 words: a form letter of one or two paragraphs
CAMPAIGN_SHARES = [0.15, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005]  # of the corpus, per campaign

OPENERS = ["", "", "", "I think", "In my view,", "Honestly,", "As a long-time member,", "Speaking as a chapter lead,", "Overall", "To be frank,", "From what I have seen,"]
SUBJECTS = [
    "the draft", "the new code", "section four", "the reporting process", "the appeals panel", "the part on AI use",
    "the consent section", "the list of examples", "the enforcement procedure", "the scope of online spaces",
    "the definition of harassment", "the language used", "the translation", "the timeline", "the committee's role",
    "the guidance for moderators", "the rules for events", "the anonymous reporting option", "the privacy notice", "the FAQ",
]
VERBS = [
    "is much clearer than", "reads better than", "is more confusing than", "goes further than", "is weaker than",
    "covers more ground than", "is harder to follow than", "improves on", "repeats", "contradicts", "leaves out what was in",
]
OBJECTS = [
    "the old version", "the current rules", "what other communities do", "the 2019 text", "the mailing list guidelines",
    "the regional codes", "the IETF's guidance", "what we discussed last year", "the board's earlier draft",
]
CLAIMS = [
    "should say who decides and how quickly", "needs concrete examples", "must protect people who report",
    "ought to be translated into more languages", "could be half as long", "should apply to private messages too",
    "needs a clear appeal route", "should not depend on a single volunteer", "must respect local law",
    "deserves a separate consultation", "should name a contact address", "should be reviewed every two years",
    "must not be used to silence criticism", "needs a plain-language summary", "should cover hybrid events",
]
REASONS = [
    "because people do not know where to turn", "since volunteers change every year", "as the current text is vague",
    "because newcomers read it first", "given how many chapters there are", "because the stakes are high for those reporting",
    "as several incidents last year showed", "because trust depends on it", "since most discussion now happens online", "",
]
SHORT = ["I agree.", "No comment.", "Fine by me", "Looks good to me.", "Nothing to add.", "Please keep it short.", "Yes", "Agree with the draft overall."]
NAMES = [
    "Ana Lopez", "Bo Chen", "Chidi Okafor", "Dana Levi", "Emre Yilmaz", "Fatima Haddad", "Gita Rao", "Hiro Sato", "Ines Costa",
    "Jonas Berg", "Kofi Mensah", "Lena Novak", "Mateo Rossi", "Nadia Karim", "Olga Ivanova", "Pedro Alves", "Quynh Tran",
    "Rahul Mehta", "Sara Nilsson", "Tomas Horvat", "Uma Iyer", "Viktor Petrov", "Wen Li", "Yara Saleh", "Zoe Martin",
]
GREETINGS = ["Dear committee,", "Hello,", "To whom it may concern:", "Dear colleagues,", "Hi all,"]
SIGNATURES = ["Regards, {}", "Best wishes, {}", "Thank you. {}", "Sincerely, {}", "{}, member since 2015"]
VARIANTS = ("copy", "name", "added", "removed", "reordered", "typos")


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        text = f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    else:
        text = f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(CLAIMS)} {rng.choice(REASONS)}"
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def organic(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return rng.choice(SHORT)
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 8)))


def typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) - 1)
    op = rng.randrange(3)
    if op == 0:
        return text[:i] + text[i + 1 :]  # a letter dropped
    if op == 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # two swapped
    return text[:i] + rng.choice("aeiourstn") + text[i:]  # one added


def member(rng: random.Random, template: list[str]) -> tuple[str, set[str]]:
    """One campaign response from its template's sentences, and the kinds of personalisation it got."""
    if rng.random() < 0.3:
        return " ".join(template), {"copy"}
    kinds: set[str] = set()
    sentences = list(template)
    if rng.random() < 0.3:
        sentences.insert(rng.randrange(len(sentences) + 1), sentence(rng))
        kinds.add("added")
    if rng.random() < 0.2 and len(sentences) > 4:
        del sentences[rng.randrange(len(sentences))]
        kinds.add("removed")
    if rng.random() < 0.2:
        i = rng.randrange(len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        kinds.add("reordered")
    if rng.random() < 0.6:
        name = rng.choice(NAMES)
        sentences = [rng.choice(GREETINGS), *sentences, rng.choice(SIGNATURES).format(name)]
        kinds.add("name")
    text = " ".join(sentences)
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            text = typo(rng, text)
        kinds.add("typos")
    return text, kinds or {"copy"}


def corpus(size: int, seed: int, template_sentences: tuple[int, int] = TEMPLATE_SENTENCES) -> list[tuple[str, str, set[str]]]:
    """`size` texts in submission order, each with its true group and how it was made."""
    rng = random.Random(seed)
    made: list[tuple[str, str, set[str]]] = []
    template: list[str] = []
    for c, share in enumerate(CAMPAIGN_SHARES):
        if c == 1:  # a second organisation's campaign, its template a rewrite of a third of the first's: a group of its own
            template = [sentence(rng) if i % 3 == 0 else s for i, s in enumerate(template)]
        else:
            template = [sentence(rng) for _ in range(rng.randint(*template_sentences))]
        made += [(text, f"campaign-{c}", kinds) for text, kinds in (member(rng, template) for _ in range(max(int(size * share), 2)))]
    while len(made) < size:
        text, group = organic(rng), f"organic-{len(made)}"
        made.append((text, group, {"organic"}))
        if rng.random() < 0.03 and len(made) < size and text not in SHORT:  # the same person, or a friend, sends it again
            made.append((text, group, {"resent"}))
    rng.shuffle(made)  # campaigns arrive spread over the consultation, and their first member is any variant
    return made[:size]


def pairs(counts: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def score(truth: list[str], predicted: list[object]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering (None: in no cluster, a group of one) against the truth."""
    predicted = [p if p is not None else ("alone", i) for i, p in enumerate(predicted)]
    together = pairs(Counter(zip(truth, predicted, strict=True)))
    return together / max(pairs(Counter(predicted)), 1), together / max(pairs(Counter(truth)), 1)


def latency(texts: list[str], threshold: float) -> tuple[float, float]:
    """p50 and p99 of fingerprinting a text and matching it against an index of those before it, in ms."""
    index, times = Index(threshold), []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        print_ = fingerprint(text)
        if print_ is not None:
            index.match(print_)
            index.add(i, print_)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=Settings().cluster_threshold)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--template-sentences", type=int, nargs=2, default=TEMPLATE_SENTENCES, metavar=("MIN", "MAX"), help="a template's length, in sentences of about ten words")
    args = parser.parse_args()
    made = corpus(args.responses, args.seed, tuple(args.template_sentences))
    texts = [t for t, _, _ in made]
    with tempfile.TemporaryDirectory(prefix="agora-cluster-bench-") as folder:
        env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": f"{folder}/agora.sqlite"}
        with System(Settings(data_dir=folder, secret="b" * 48, cluster_threshold=args.threshold), env) as system:
            definition = read_definition(SEED.read_bytes())
            system.consultations.load(definition)
            started = time.perf_counter()
            ids = []
            for first in range(0, len(texts), BATCH):
                receipts = system.consultations.submit_batch(
                    [Submission(definition.slug, {"familiarity": "read", "works_well": t}) for t in texts[first : first + BATCH]]
                )
                ids += [r.id for r in receipts]  # type: ignore[union-attr]
            submitted = time.perf_counter() - started
            clusterer = system.clusterer()
            started = time.perf_counter()
            clusterer.catch_up()
            assigned = time.perf_counter() - started
            book = system.campaigns.book()
            predicted = [book.cluster_of(i) for i in ids]
    precision, recall = score([g for _, g, _ in made], predicted)
    p50, p99 = latency(texts, args.threshold)
    campaign = sum(g.startswith("campaign") for _, g, _ in made)
    clusters = Counter(p for p in predicted if p is not None)
    print(
        f"{len(texts):,} responses ({campaign:,} in {len(CAMPAIGN_SHARES)} campaigns), threshold {args.threshold}: "
        f"precision {precision:.4f}, recall {recall:.4f} ({'ok' if min(precision, recall) >= TARGET else 'BELOW'} the {TARGET} target); "
        f"{sum(n > 1 for n in clusters.values()):,} clusters of two or more"
    )
    print(
        f"submitted in {submitted:.1f} s; the clusterer assigned them all in {assigned:.1f} s = {assigned / len(texts) * 1000:.2f} ms per response "
        f"(catching up over the log, in batches); fingerprint and match alone: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    # Recall by personalisation: the share of a campaign's members placed in the cluster most of it is in.
    main_cluster = {g: Counter(p for (_, gg, _), p in zip(made, predicted, strict=True) if gg == g and p).most_common(1) for g, _ in Counter(g for _, g, _ in made).items() if g.startswith("campaign")}
    for variant in VARIANTS:
        members = [(g, p) for (_, g, kinds), p in zip(made, predicted, strict=True) if g.startswith("campaign") and variant in kinds]
        placed = sum(1 for g, p in members if main_cluster[g] and p == main_cluster[g][0][0])
        print(f"  {variant:>9}: {placed:,} of {len(members):,} members in their campaign's main cluster ({placed / max(len(members), 1):.1%})")
    sys.exit(0 if min(precision, recall) >= TARGET else 1)


if __name__ == "__main__":
    main()
