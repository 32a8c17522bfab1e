"""Customer reviews with sentiment and topic labels from four human labellers (with noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import SENTIMENTS, TOPICS, Company

NOUN = {
    "tents": "tent", "sleeping bags": "bag", "backpacks": "pack", "jackets": "jacket",
    "footwear": "pair of boots", "cooking": "stove", "lighting": "light", "accessories": "thing",
}
WEAR = ("backpacks", "jackets", "footwear")
RAIN = ("tents", "jackets", "footwear", "backpacks", "accessories")
ALL = None

# (text, categories or None for any). {n} = product noun.
BANK: dict[str, dict[str, list[tuple[str, tuple | None]]]] = {
    "fit": {
        "positive": [
            ("Fits true to size. I'm usually a medium and the medium is spot on.", ("jackets",)),
            ("Plenty of room in the toe box and no heel lift at all.", ("footwear",)),
            ("The size chart was accurate and it fits like it was made for me.", WEAR),
            ("Room for a fleece underneath without it looking baggy.", ("jackets",)),
            ("Adjusted the straps once and it sits perfectly on my back.", ("backpacks",)),
            ("My son has wide feet and these fit him first time, which never happens.", ("footwear",)),
            ("Torso length adjustment actually works for someone short like me.", ("backpacks",)),
            ("Long enough for my 6'3\" husband, finally.", ("sleeping bags",)),
        ],
        "neutral": [
            ("Fit is ok, runs maybe half a size small so size up.", ("footwear", "jackets")),
            ("Sleeves are a touch long but the cuffs tighten so it's fine.", ("jackets",)),
            ("Fit is fine. Not amazing, not bad.", WEAR),
            ("A bit snug across the shoulders, still wearable.", ("jackets", "backpacks")),
            ("Regular length is a little tight if you're over 6ft.", ("sleeping bags",)),
        ],
        "negative": [
            ("Way too small. Ordered my normal size and couldn't zip it over a base layer.", ("jackets",)),
            ("The back length doesn't suit a short torso, it sits on my bum.", ("backpacks",)),
            ("Heel slips on every uphill and gave me blisters on day one.", ("footwear",)),
            ("Sizing is all over the place, I had to send two back.", WEAR),
            ("Narrow fit, my toes were crushed within a mile.", ("footwear",)),
            ("Hip belt doesn't close small enough for me, it just slides down.", ("backpacks",)),
        ],
    },
    "durability": {
        "positive": [
            ("Three seasons of hard use and not a single loose thread.", ALL),
            ("Dragged it over granite all summer and it still looks new.", ("backpacks", "jackets", "footwear")),
            ("Zips are chunky and still run smoothly after a year.", ("tents", "jackets", "backpacks", "sleeping bags")),
            ("Survived a week of Scout camp, which is the real test.", ALL),
            ("Built like a tank. Dropped it on rocks twice, not a scratch.", ("cooking", "lighting", "accessories")),
            ("Still going strong after 400 miles.", ("footwear",)),
        ],
        "neutral": [
            ("Some pilling after a few months but otherwise holding up.", ("jackets",)),
            ("Too early to say how it lasts, seems solidly made.", ALL),
            ("One pole section bent but the rest has been fine so far.", ("tents",)),
            ("A few scuffs, nothing structural yet.", ALL),
        ],
        "negative": [
            ("Seam started to split after the second trip.", ("tents", "jackets", "backpacks", "sleeping bags")),
            ("The zip pull snapped off within a month.", ("tents", "jackets", "backpacks", "sleeping bags")),
            ("Sole started peeling away at the toe after about 150 miles.", ("footwear",)),
            ("Buckle cracked the first cold morning. Not good enough at this price.", ("backpacks",)),
            ("Great, another {n} that broke on day two. Really impressed.", ALL),
            ("The switch stopped working after a few weeks.", ("lighting",)),
            ("Igniter died on the third use, had to carry a lighter anyway.", ("cooking",)),
        ],
    },
    "shipping": {
        "positive": [
            ("Arrived the next day, well packed.", ALL),
            ("Ordered on Sunday and it was on my doorstep Tuesday morning.", ALL),
            ("Quick delivery and the tracking was accurate.", ALL),
            ("Came two days earlier than promised, just in time for our trip.", ALL),
        ],
        "neutral": [
            ("Delivery took about a week, which is what they said.", ALL),
            ("Box was a bit battered but the contents were fine.", ALL),
            ("Shipping was standard, nothing to report.", ALL),
        ],
        "negative": [
            ("Took three weeks to arrive and missed the trip I bought it for.", ALL),
            ("Courier left it in the rain outside my door.", ALL),
            ("Tracking said delivered, it wasn't. Turned up five days later.", ALL),
            ("Arrived in a ripped bag with one piece missing.", ALL),
        ],
    },
    "price": {
        "positive": [
            ("Great value, about half the price of the big brands and just as good.", ALL),
            ("Got it in the sale and honestly it feels like I stole it.", ALL),
            ("Worth every cent.", ALL),
            ("For the money you can't really go wrong.", ALL),
        ],
        "neutral": [
            ("Fair price for what it is.", ALL),
            ("Not cheap, but you get what you pay for.", ALL),
            ("Priced about the same as everyone else.", ALL),
        ],
        "negative": [
            ("Overpriced for what you get.", ALL),
            ("It dropped $40 a week after I bought it, which is annoying.", ALL),
            ("Too expensive given how cheap the buckles feel.", ("backpacks", "jackets")),
            ("Can't justify this price when the basic model does the same job.", ALL),
        ],
    },
    "waterproofing": {
        "positive": [
            ("Sat out a night of proper downpour and woke up bone dry.", ("tents",)),
            ("Six hours of rain on the ridge and nothing got through.", ("jackets",)),
            ("Waded a stream crossing and my socks stayed dry.", ("footwear",)),
            ("Kayaked with it strapped on deck, contents dry as a bone.", ("accessories",)),
            ("Heavy rain all afternoon and everything inside stayed dry.", ("backpacks", "tents")),
        ],
        "neutral": [
            ("Kept most of the rain out, a little damp at the cuffs.", ("jackets",)),
            ("Fine in showers, haven't tested it in a real storm yet.", RAIN),
            ("Some condensation inside but I don't think it actually leaked.", ("tents",)),
        ],
        "negative": [
            ("Leaked at the seams in the first shower.", ("tents", "jackets")),
            ("Soaked through at the shoulders within an hour of steady rain.", ("jackets",)),
            ("Water pooled on the groundsheet overnight.", ("tents",)),
            ("Wet feet after twenty minutes in dewy grass.", ("footwear",)),
            ("Everything in the bottom of the pack got wet.", ("backpacks",)),
        ],
    },
    "comfort": {
        "positive": [
            ("Super comfortable straight out of the box.", ("footwear", "jackets")),
            ("Slept better than I do at home.", ("sleeping bags", "tents")),
            ("Carried 12 kg all day and my shoulders didn't complain.", ("backpacks",)),
            ("So warm and cozy, I was toasty at 28F.", ("sleeping bags",)),
            ("Light enough that I forget it's on my head.", ("lighting",)),
        ],
        "neutral": [
            ("Comfortable enough for a night or two.", ("sleeping bags", "tents")),
            ("Takes a few walks to break in, fine after that.", ("footwear",)),
            ("Comfy but a bit warm for summer.", ("jackets", "sleeping bags")),
        ],
        "negative": [
            ("Hip belt digs in after an hour.", ("backpacks",)),
            ("Cold spots along the zip all night.", ("sleeping bags",)),
            ("Rubs on the ankle bone, couldn't wear them more than an hour.", ("footwear",)),
            ("Strap gives me a headache after a while.", ("lighting",)),
            ("Too cramped to even sit up in.", ("tents",)),
        ],
    },
    "customer service": {
        "positive": [
            ("Had a sizing question and the team replied within the hour.", ALL),
            ("Broke a part, they posted a replacement free of charge.", ALL),
            ("Really helpful chat support, sorted my exchange in five minutes.", ALL),
            ("Called about a warranty issue and they just sorted it, no fuss.", ALL),
        ],
        "neutral": [
            ("Customer service answered eventually, took a couple of days.", ALL),
            ("Return was processed, just slower than I'd like.", ALL),
        ],
        "negative": [
            ("Emailed three times about a fault, no reply.", ALL),
            ("Support kept sending me a link to the FAQ instead of answering.", ALL),
            ("They refused a return because the tags were off, even though it was faulty.", ALL),
            ("On hold for 40 minutes and then got cut off.", ALL),
        ],
    },
}

OPENERS = {
    "positive": ["", "", "", "Bought this for {purpose}.", "Second one I've bought.", "Update after six months:",
                 "Gift for my husband and he loves it.", "Really pleased with this {n}."],
    "neutral": ["", "", "", "Bought this for {purpose}.", "Mixed feelings.", "It's fine.", "Honest review:"],
    "negative": ["", "", "", "Bought this for {purpose}.", "Disappointed.", "Really wanted to like this {n}.",
                 "Long review, sorry."],
}
PURPOSES = ["a trip to the Smokies", "my daughter's first camping trip", "a week in the Adirondacks",
            "hiking in Zion", "our school's outdoor ed week", "a section of the AT", "car camping with the kids",
            "a Colorado fourteener", "weekend trips in the Cascades", "the Olympic peninsula"]
CONTEXT = ["Used it {when} {where}.", "Took it {where} {when}.", "", "", ""]
WHEN = ["last October", "over Memorial Day weekend", "in early spring", "last summer", "on a wet weekend in May",
        "twice now", "on a three-day trip"]
WHERE = ["in the Whites", "up in the Cascades", "in a local state park", "on the Olympic peninsula",
         "in the Smokies", "around Lake Tahoe", "in Shenandoah"]
CLOSERS = {
    "positive": ["", "", "Would recommend.", "Would buy again.", "Happy overall.", "Five stars from me."],
    "neutral": ["", "", "Does the job.", "Meh.", "Might return it, haven't decided.", "Three stars feels right."],
    "negative": ["", "", "Not buying again.", "Returning it.", "Save your money.", "Very disappointed."],
}
TYPOS = [("definitely", "definately"), ("received", "recieved"), ("really", "realy"), ("weather", "wether"),
         ("comfortable", "comfortible"), ("because", "becuase")]

SENT_RATING = {"positive": ((4, 5), (0.4, 0.6)), "neutral": ((3, 2, 4), (0.7, 0.15, 0.15)),
               "negative": ((1, 2), (0.6, 0.4))}
LABELLERS = ("L01", "L02", "L03", "L04")


def _lead_in(prefix: str, sentence: str) -> str:
    if not prefix or sentence.startswith(("I ", "I'm", "I'd")):
        return prefix + sentence
    return prefix + sentence[0].lower() + sentence[1:]


def _options(topic: str, sentiment: str, category: str) -> list[str]:
    return [t for t, cats in BANK[topic][sentiment] if cats is None or category in cats]


def generate(company: Company, products: pd.DataFrame, n: int, with_truth: bool = False) -> pd.DataFrame:
    """Return ``n`` labelled reviews (deterministic); ``with_truth`` adds the generator's intended labels."""
    rng = np.random.default_rng(company.seed + 3)
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    skus = products["sku"].tolist()
    cats = dict(zip(products["sku"], products["category"]))
    popularity = rng.pareto(1.2, len(skus)) + 0.2
    popularity /= popularity.sum()
    start = np.datetime64("2023-01-01")
    rows = []
    while len(rows) < n:
        sku = skus[int(rng.choice(len(skus), p=popularity))]
        cat = cats[sku]
        noun = NOUN[cat]
        day = start + np.timedelta64(int(rng.integers(0, 731)), "D")
        month = int(str(day)[5:7])
        weights = np.array([1.0, 1.6, 1.4 if month in (11, 12) else 0.7, 0.9, 1.1, 1.2, 0.6])
        avail = np.array([1.0 if _options(t, "negative", cat) and _options(t, "positive", cat) else 0.0 for t in TOPICS])
        w = weights * avail
        topic = TOPICS[int(rng.choice(len(TOPICS), p=w / w.sum()))]
        sentiment = SENTIMENTS[int(rng.choice(3, p=(0.58, 0.14, 0.28)))]
        opts = _options(topic, sentiment, cat)
        if not opts:  # e.g. no neutral comfort phrases for lights: keep text and label consistent
            sentiment = "positive"
            opts = _options(topic, sentiment, cat)
        core = [pick(opts).replace("{n}", noun)]
        if rng.random() < 0.35:  # a second sentence on the same topic
            extra = [o for o in _options(topic, sentiment, cat) if o.replace("{n}", noun) not in core]
            if extra:
                core.append(pick(extra).replace("{n}", noun))
        ambiguous = rng.random() < 0.2
        second_topic = None
        if ambiguous:
            others = [t for t in TOPICS if t != topic and _options(t, "positive", cat) and _options(t, "negative", cat)]
            second_topic = pick(others)
            s2 = pick(("positive", "negative")) if sentiment == "neutral" else (
                "negative" if sentiment == "positive" else "positive") if rng.random() < 0.6 else sentiment
            side = pick(_options(second_topic, s2, cat) or _options(second_topic, "positive", cat)).replace("{n}", noun)
            pos = int(rng.integers(0, len(core) + 1))
            lead = pick(("", "That said, ", "Only thing: ", "Also, ")) if pos > 0 else ""
            core.insert(pos, _lead_in(lead, side))
            core = [c[0].upper() + c[1:] for c in core]
        parts = [pick(OPENERS[sentiment]).format(purpose=pick(PURPOSES), n=noun)]
        parts += core
        parts.append(pick(CONTEXT).format(when=pick(WHEN), where=pick(WHERE)))
        parts.append(pick(CLOSERS[sentiment]))
        text = " ".join(p for p in parts if p)
        if rng.random() < 0.08:
            text = text.lower()
        if rng.random() < 0.15:
            for right, wrong in TYPOS:
                text = text.replace(right, wrong)
        if rng.random() < 0.1:
            text = text.rstrip(".")
        ratings, probs = SENT_RATING[sentiment]
        rating = int(rng.choice(ratings, p=probs))
        if rng.random() < 0.04:  # clicked the wrong star
            rating = 6 - rating if rating != 3 else pick((1, 5))
        # --- human labels, with realistic noise ---
        labeller = pick(LABELLERS)
        lab_topic, lab_sent = topic, sentiment
        if ambiguous and rng.random() < (0.45 if labeller == "L02" else 0.15):
            lab_topic = second_topic
        if labeller == "L04" and sentiment == "neutral" and rng.random() < 0.4:
            lab_sent = "positive"
        if rng.random() < 0.03:
            lab_topic = pick([t for t in TOPICS if t != topic])
        if rng.random() < 0.03:
            lab_sent = pick([s for s in SENTIMENTS if s != sentiment])
        if "Really impressed" in text and rng.random() < 0.5:  # sarcasm fools some labellers
            lab_sent = "positive"
        rows.append({"sku": sku, "date": str(day), "rating": rating, "text": text,
                     "sentiment": lab_sent, "topic": lab_topic, "labeller_id": labeller,
                     "true_sentiment": sentiment, "true_topic": topic, "ambiguous": ambiguous})
    df = pd.DataFrame(rows).sort_values(["date", "sku", "text"], kind="mergesort").reset_index(drop=True)
    prefix = "RV" if company.sku_prefix == "RO" else "HRV"
    df.insert(0, "review_id", [f"{prefix}-{i + 1:05d}" for i in range(len(df))])
    return df if with_truth else df.drop(columns=["true_sentiment", "true_topic", "ambiguous"])
