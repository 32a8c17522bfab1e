"""Vendor proposals answering a CMO's request, plus an expert scorecard (0-2 per question)."""

from __future__ import annotations

import pandas as pd

from .common import SCORECARD_QUESTIONS, Company

# Each proposal: id, vendor, file stem, markdown body, and scores {question: (score, justification)}.
LEARNER: list[dict] = [
    {
        "id": "P1", "vendor": "Fernhollow Analytics", "file": "01_fernhollow_analytics",
        "body": """\
# Proposal: Product recommendations and description drafting for Ridgeline Outfitters

**From:** Fernhollow Analytics
**To:** Chief Marketing Officer, Ridgeline Outfitters

## What we will build
A recommendation service for the web shop and email, and a drafting tool that writes first-draft product
descriptions which your copy team approves before publishing. Nothing goes live without a human sign-off
in the first six months.

## Training data and freshness
The recommender is trained on 24 months of order lines, browsing sessions and returns from your
warehouse, refreshed nightly. We exclude B2B bulk orders from the consumer model because they distort
"people also bought". The description tool uses your product feed (specs, certifications and the
"not true" list your merchandisers keep) and 400 approved descriptions as examples. We will write a
data card for each source: owner, refresh schedule, known gaps.

## Monitoring after launch
We report rates, not totals: the share of recommendations that lead to an add-to-cart, split by new and
returning customers and by channel, every week on one dashboard. For descriptions we track the share of
drafts approved without edits and the share failing your brand-voice checks. Each rate has an alert
threshold agreed with you before launch (for example, effectiveness down more than 5 points on its
8-week average).

## Retraining: trigger and owner
Retraining is scheduled monthly and triggered early when an alert fires for two consecutive weeks or
when the customer mix moves more than 10 points. Our named ML engineer runs it; your e-commerce manager
owns the decision to promote the new model, using a side-by-side comparison on the last four weeks.

## Integration
Recommendations are served from an API your web platform calls; the same scores are written to your
warehouse (BigQuery) daily and synced to your CRM and email platform as a customer attribute, so
Braze campaigns can use them without a new tool. Drafts land in your PIM as "pending review".

## Production references
We run a similar recommender for a 300-store sporting-goods retailer (18 months in production, about
2 million sessions a week) and a description workflow for a homeware marketplace. Both clients have
agreed to take a reference call; we can share their monitoring dashboards under NDA.

## Timeline and cost
Eight weeks to a monitored pilot on 10% of traffic, then a go/no-go review against the acceptance rates
above. Fixed fee for the pilot; monthly fee for running and retraining after that.
""",
        "scores": {
            "training_data": (2, "Names sources, 24-month window, nightly refresh and what is excluded and why."),
            "monitoring": (2, "Weekly effectiveness rates by segment with agreed alert thresholds."),
            "retraining_owner": (2, "Monthly plus alert-based trigger; named engineer runs it, client owns promotion."),
            "integration": (2, "Specific paths to web platform, warehouse, CRM/email and PIM."),
            "production_references": (2, "Two comparable systems in production, with scale and reference calls offered."),
        },
    },
    {
        "id": "P2", "vendor": "Glimmerstack AI", "file": "02_glimmerstack_ai",
        "body": """\
# Glimmerstack AI x Ridgeline Outfitters: the future of outdoor retail

**From:** Glimmerstack AI
**To:** Chief Marketing Officer, Ridgeline Outfitters

## Imagine this
A shopper lands on your site at 6 a.m., planning a first overnight hike. Before she has scrolled, our
engine knows her: the tent, the sleeping bag, the headlamp, all perfectly matched, each with a
description written just for her in your voice. That is not a roadmap. We showed it live at three
industry conferences this year, and the room went quiet.

## Why Glimmerstack
Our proprietary hyper-personalisation model is built on the latest foundation models and fine-tuned
with our unique retail intelligence layer. It understands intent, not just clicks. In our demo store,
conversion rose 212% in a single afternoon. Descriptions are generated in milliseconds, in any language,
in any tone you like.

## How it works
You share a product feed and we do the rest. Our AI learns continuously from every interaction, so it
only gets smarter over time. There is no need for your team to manage models, data or dashboards; the
platform is fully autonomous.

## Integrations
Glimmerstack plugs into every major e-commerce platform, CRM and marketing tool. Setup typically takes
under an afternoon with our one-line script.

## Results you can expect
- Up to 3x conversion on recommended products
- 90% reduction in copywriting time
- A brand experience your customers will talk about

## What our clients say
"Honestly the most impressive AI demo we have seen." - Head of Digital, a leading lifestyle brand

## Next steps
We would love to build a custom demo on your catalogue within five days, at no cost. Once you have seen
your own products come to life, we are confident the decision will make itself. Our enterprise plan
includes unlimited generations, premium support and early access to new features.

Let us show you what is possible.
""",
        "scores": {
            "training_data": (0, "Only 'share a product feed'; no sources, history window or freshness."),
            "monitoring": (0, "Says no dashboards are needed; no rates, thresholds or alerts."),
            "retraining_owner": (0, "'Learns continuously' with no trigger, checks or owner."),
            "integration": (1, "Claims plugs into everything; a script tag is named but no CRM or warehouse path."),
            "production_references": (0, "Demo results and an anonymous quote; no production system named."),
        },
    },
    {
        "id": "P3", "vendor": "Tallgrass Systems", "file": "03_tallgrass_systems",
        "body": """\
# Proposal: Recommendation engine integration for Ridgeline Outfitters

**From:** Tallgrass Systems (marketing technology integrators)
**To:** Chief Marketing Officer, Ridgeline Outfitters

## Summary
We are systems integrators first. Most AI projects stall at the point where the model has to talk to the
rest of the stack, so that is where we start.

## Integration plan
- **Warehouse:** we read orders, sessions and product data from your BigQuery project through a
  read-only service account, and write recommendation scores back to a dedicated dataset nightly.
- **CRM:** scores and "next best product" fields are synced to Salesforce contact records through the
  standard bulk API, so sales can use them for school and club accounts.
- **Email automation:** a Braze connected content endpoint returns the top three products per customer
  at send time; fallbacks are the category bestsellers if the service does not answer within 300 ms.
- **Web:** a JavaScript widget and a server-side API for the product page and basket.
We will document every data flow and hand over runbooks to your IT team.

## Data
We will use the historical order and browsing data in your warehouse. The exact period will be agreed
during discovery.

## The model
We license a proven recommendation model from a partner and configure it for your catalogue. It is
trained once on your history during setup.

## Monitoring and maintenance
Our support desk monitors uptime and API response times around the clock, with a 99.9% availability
commitment. We will provide a monthly report of recommendations served and clicks.

## References
We have delivered more than 40 CRM and e-commerce integration projects, including Salesforce and Braze
deployments for two national retailers, both still live. We are happy to put you in touch with their IT
leads. This will be our second recommendation project.

## Timeline
Twelve weeks, of which eight are integration and testing.
""",
        "scores": {
            "training_data": (1, "Uses warehouse history, but the period and refresh are left to discovery."),
            "monitoring": (0, "Monitors uptime and counts served/clicks; no effectiveness rate or drift check."),
            "retraining_owner": (0, "Trained once at setup; no retraining trigger or owner."),
            "integration": (2, "Detailed flows for warehouse, CRM, email (with fallback) and web."),
            "production_references": (1, "Strong integration references, but only one prior recommendation project."),
        },
    },
    {
        "id": "P4", "vendor": "Quillfeather Labs", "file": "04_quillfeather_labs",
        "body": """\
# Proposal: A product description generator Ridgeline can trust

**From:** Quillfeather Labs
**To:** Chief Marketing Officer, Ridgeline Outfitters

## Our approach
Your request covered recommendations and descriptions. We recommend starting with descriptions only:
it is the workflow your team would use the next day, and it is easier to measure.

## Training data and freshness
We will not train a new model. We use a hosted language model and give it, for each product, the
fields in your product feed: specs with units, certifications, and your merchandisers' list of claims
that are not true for that product. The feed is pulled every morning, so a spec change on Monday shows
in Tuesday's drafts. We will also use 300 of your best existing descriptions as examples, chosen with
your copy lead.

## Quality checks and monitoring
Every draft runs through automatic checks before a human sees it: banned words, claims that need proof
(for example, "waterproof" only with a hydrostatic head of 1500 mm or more), length limits per channel
and required disclaimers. A small judge model scores tone against your brand voice; we calibrate it
against 200 descriptions your team has rated and report agreement. After launch we track, weekly, the
share of drafts that pass all checks and the share approved without edits, and we sample 20 drafts a
week for human review.

## When quality drops
If the pass rate falls, we look at it together and improve the prompts or examples as needed. Our team
is small, so we will agree with you how to handle this.

## Integration
Drafts are exported as a CSV for your team to upload. A direct connection to your product information
system could be added in a later phase.

## About us
We are a four-person studio founded last year by former copywriters and a data scientist. This would be
our first production deployment; our pilots so far have been internal.

## Timeline
Four weeks to a working pilot on two categories (tents and jackets).
""",
        "scores": {
            "training_data": (2, "Exact fields, daily refresh, and how examples are chosen."),
            "monitoring": (2, "Weekly pass and approval rates, calibrated judge, human sampling."),
            "retraining_owner": (1, "Says prompts will be improved but no trigger threshold or named owner."),
            "integration": (0, "CSV export only; no CRM, automation or warehouse connection."),
            "production_references": (0, "First production deployment; no references."),
        },
    },
    {
        "id": "P5", "vendor": "Brambleworth Digital", "file": "05_brambleworth_digital",
        "body": """\
# Brambleworth Digital: AI-powered growth for Ridgeline Outfitters

**From:** Brambleworth Digital
**To:** Chief Marketing Officer, Ridgeline Outfitters

## Understanding your needs
Ridgeline Outfitters is a well-loved brand in a competitive market. Customers expect relevant,
personal experiences, and your team needs to produce more content, faster. AI can help with both.

## Our solution
Brambleworth's AI Growth Suite combines personalisation and content generation in one platform. It
uses advanced machine learning and natural language processing to deliver the right product to the
right customer at the right time, with compelling copy to match.

## Data
The suite works with the data you already have. During onboarding our data team will review your data
and recommend improvements to get the most out of the platform.

## Performance
Our dashboards show you everything: impressions, clicks, conversions and revenue from recommended
products, updated in real time. You will always know how many customers the AI is reaching.

## Keeping the model up to date
Our AI team continuously improves the models behind the suite, and every client benefits from these
improvements automatically.

## Integration
The suite offers connectors for popular CRM and marketing automation tools. Our implementation team
will work with yours to make sure everything runs smoothly.

## Experience
Brambleworth has helped more than 150 brands with digital transformation, from website builds to paid
social. Our clients include retailers in fashion, home and leisure. Case studies are available on request.

## Investment
Pricing depends on the modules and volume you choose. Most clients start with our Growth package and
upgrade as they see results.

## Team and timeline
A dedicated account director, a creative lead and a technical consultant will support you through
onboarding, which usually takes six to eight weeks depending on the number of modules. Training
sessions for your marketing team are included.

## Why now
Your competitors are already using AI. The sooner you start, the sooner you learn. We can begin
onboarding next month.
""",
        "scores": {
            "training_data": (0, "'The data you already have'; nothing on sources or freshness."),
            "monitoring": (0, "Absolute counts only (impressions, clicks, revenue); no effectiveness rate."),
            "retraining_owner": (0, "Vendor improves models 'automatically'; no trigger or client-side owner."),
            "integration": (1, "Mentions connectors for CRM and automation but none named, no warehouse."),
            "production_references": (0, "General digital agency history; no AI system in production named."),
        },
    },
    {
        "id": "P6", "vendor": "Saltmarsh Data Co.", "file": "06_saltmarsh_data",
        "body": """\
# Proposal: Personalised recommendations for Ridgeline Outfitters

**From:** Saltmarsh Data Co.
**To:** Chief Marketing Officer, Ridgeline Outfitters

## Scope
A recommendation model for the web shop and weekly email, built in your cloud account so you own the
code and the model.

## Data
We will train on orders and site sessions from the last 18 months in your warehouse. Product data
comes from your catalogue export. We will refresh the training data each quarter when we retrain.
We have not yet seen your data, so the first two weeks are a data audit with a written report.

## Measuring performance
Before launch we run an A/B test: half of the traffic sees our recommendations and half sees your
current bestseller lists. After launch we report recommendation click-through rate and conversion rate
on recommended products each month, compared with the bestseller baseline.

## Retraining
The model is retrained every quarter by our team. If you would like a different schedule, we can
discuss it.

## Integration
Recommendations are written to a table in your warehouse every night. Your team can pick them up from
there for email and the website; we can help with the connection to your email platform for an
additional fee.

## Experience
Our team has built recommendation models for a regional grocery chain (live for two years) and a
bookshop group. References can be provided once we are shortlisted.

## Team
A lead data scientist (ten years' experience), a data engineer and a part-time project manager.

## Risks we see
Your catalogue changes every season, so some products will have little history when they launch. For
those we fall back to category bestsellers until they have enough sales. B2B orders may need separate
handling; the audit will tell us.

## Timeline and cost
Ten weeks, including the data audit and a four-week A/B test. Fixed price, with an optional support
retainer after launch.
""",
        "scores": {
            "training_data": (1, "18 months named but refreshed only quarterly; audit still to come."),
            "monitoring": (1, "Monthly rates against a baseline, but no alert threshold or segment split."),
            "retraining_owner": (1, "Quarterly schedule with vendor owner; no performance-based trigger."),
            "integration": (1, "Warehouse table only; email and CRM left to the client or extra fees."),
            "production_references": (2, "Two comparable systems in production, references offered."),
        },
    },
]

HOLDOUT: list[dict] = [
    {
        "id": "H1", "vendor": "Vantorra AI", "file": "h1_vantorra_ai",
        "body": """\
# Proposal: Personalisation engine for Halcyon Expeditions

**From:** Vantorra AI
**To:** Chief Marketing Officer, Halcyon Expeditions

## What we propose
A recommendation engine for the Halcyon web shop and newsletters, run in your own cloud account, with
a dashboard your marketing team reads every Monday.

## Data and freshness
Training uses three years of orders, returns and browsing sessions from your data warehouse (Snowflake),
plus the product catalogue with its specs and stock levels. Data is refreshed daily. Orders older than
three years are dropped because your range has changed too much for them to help. Gift-card purchases
and staff orders are excluded.

## Monitoring
The dashboard shows the effectiveness rate: recommendations followed by an add-to-cart, divided by
recommendations shown, by week, for new and returning customers and for each channel. We alert your
e-commerce lead when the rate falls more than four points below its twelve-week average, or when the
share of new customers moves more than eight points in a month.

## Retraining
Retraining runs automatically every two weeks. An alert also triggers an out-of-cycle retrain, which
our on-call engineer reviews within two working days. The new model only goes live if it beats the
current one on the last four weeks of data; your e-commerce lead signs off each promotion.

## Integration
Scores are written to Snowflake nightly and synced to your CRM (HubSpot) as contact properties, which
your email workflows already read. The web shop calls a REST API with a 200 ms budget and falls back to
bestsellers if it does not answer.

## Experience
We have built and supported recommendation systems for online retailers for six years. Our largest
current deployment serves a European cycling retailer at around a million sessions a week. We can
arrange a reference call once we are shortlisted.

## Plan
Six weeks to a pilot on 20% of traffic, then a review against the agreed rates.
""",
        "scores": {
            "training_data": (2, "Named sources, three-year window, daily refresh and explicit exclusions."),
            "monitoring": (2, "Weekly effectiveness rate by segment and channel with numeric alerts."),
            "retraining_owner": (2, "Fortnightly plus alert trigger; engineer reviews, client lead signs off."),
            "integration": (2, "Warehouse, CRM properties, email workflows and web API with fallback."),
            "production_references": (1, "One deployment described at scale; reference only after shortlisting."),
        },
    },
    {
        "id": "H2", "vendor": "Brightloom Studio", "file": "h2_brightloom_studio",
        "body": """\
# Brightloom Studio for Halcyon Expeditions: adventure, personalised

**From:** Brightloom Studio
**To:** Chief Marketing Officer, Halcyon Expeditions

## A new kind of shopping experience
Picture a customer browsing for their first desert trek. Brightloom's engine reads the moment and
builds a whole kit around them: the right boots, the right pack, a stove for the canyon nights, each
described in words that feel written for them alone. Our launch video of this experience has been
viewed more than two million times.

## Powered by next-generation AI
Brightloom combines the newest large language models with our patented Emotion Graph, which maps
what shoppers feel, not just what they click. It works out of the box, with no training needed and
no data science team required on your side.

## Always improving
The engine learns from every visit in real time, so it is always up to date and never needs
maintenance. You will never need to think about models again.

## Fits your stack
Brightloom works with any website. Add our snippet and go live the same day. We also offer a
marketplace app for leading e-commerce platforms.

## Proven impact
- Engagement up to 5x in our showcase store
- Content costs cut by up to 80%
- Loved by creative teams

## Partnership
Every client gets a dedicated success manager and a quarterly creative workshop with our team. We
would love to prepare a bespoke concept demo for Halcyon Expeditions within the week, free of charge,
so you can see your own catalogue brought to life before making any decision.

## Pricing
Simple monthly plans based on traffic, with a 30-day free trial. Annual plans include two months free.

## Let us inspire you
Book a demo and see why brands are talking about Brightloom. We are confident you will love what you
see, and your customers will too.
""",
        "scores": {
            "training_data": (0, "'No training needed'; no data sources or freshness."),
            "monitoring": (0, "No monitoring; claims it never needs maintenance."),
            "retraining_owner": (0, "'Learns in real time' with no trigger, review or owner."),
            "integration": (0, "Website snippet only; no CRM, automation or warehouse."),
            "production_references": (0, "Showcase store and video views; no production system named."),
        },
    },
]


def proposals_for(company: Company) -> list[dict]:
    """The proposals written to ``company``."""
    return LEARNER if company.sku_prefix == "RO" else HOLDOUT


def scorecard(company: Company) -> pd.DataFrame:
    """Long-format expert scorecard: one row per proposal and question."""
    rows = []
    for p in proposals_for(company):
        assert list(p["scores"]) == list(SCORECARD_QUESTIONS), p["id"]
        for q in SCORECARD_QUESTIONS:
            score, why = p["scores"][q]
            rows.append({"proposal_id": p["id"], "vendor": p["vendor"], "file": p["file"] + ".md",
                         "question": q, "score": score, "justification": why})
    return pd.DataFrame(rows)
