"""Demo case bank and execution history with known patterns, for `manage.py seed_demo`.

Everything is deterministic (fixed ids and a seeded RNG), so seeding twice changes nothing.
Known patterns, so reflection has something real to find:
- four cases fail often, each with one dominant error type;
- one case degrades sharply in the last 24 hours;
- one case is slow (p95 far above 2 s).
"""
from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from casebank.cases import services as case_services
from casebank.models import Case
from reflection.logs import services as ingestion

DEMO_NAMESPACE = uuid.UUID("6f1d8a52-3c2e-4b7a-9d0e-5a4c3b2a1f00")
DEMO_ACTOR = "seed_demo"
LOG_DAYS = 30
LOG_COUNT = 10_000


@dataclass(frozen=True)
class DemoCase:
    slug: str
    title: str
    query: str
    category: str
    agents: tuple[str, ...]


def _case(slug: str, title: str, query: str, category: str, *agents: str) -> DemoCase:
    return DemoCase(slug, title, query, category, agents or ("data_analysis",))


DA, IR = "data_analysis", "information_retrieval"

DEMO_CASES = [
    _case("rev-region", "Monthly revenue by region", "Show monthly revenue by region for the last quarter", "analytics/sales", DA),
    _case("top-products", "Top products by revenue", "Which ten products brought the most revenue this year?", "analytics/sales", DA),
    _case("aov-trend", "Average order value trend", "How has the average order value changed week over week?", "analytics/sales", DA),
    _case("sales-forecast", "Next month's sales forecast", "Forecast next month's sales from the last twelve months", "analytics/sales", DA),
    _case("discount-impact", "Effect of discounts on margin", "Did the spring discount campaign hurt gross margin?", "analytics/sales", DA, IR),
    _case("churn-drivers", "Churn drivers", "Why did customers churn last month and which segments churned most?", "analytics/customers", DA, IR),
    _case("cohort-retention", "Cohort retention table", "Build a monthly cohort retention table for new signups", "analytics/customers", DA),
    _case("ltv-segment", "Customer lifetime value by segment", "Estimate customer lifetime value per customer segment", "analytics/customers", DA),
    _case("nps-themes", "NPS verbatim themes", "Summarise the main themes in detractor NPS comments", "analytics/customers", IR),
    _case("signup-funnel", "Signup funnel drop-off", "Where do users drop off in the signup funnel?", "analytics/product", DA),
    _case("feature-adoption", "Feature adoption after launch", "How many active users adopted the new export feature?", "analytics/product", DA),
    _case("dau-mau", "DAU/MAU stickiness", "Compute daily over monthly active users for the last 90 days", "analytics/product", DA),
    _case("ab-test", "A/B test readout", "Is variant B of the pricing page significantly better than A?", "analytics/product", DA),
    _case("session-length", "Session length distribution", "Show the distribution of session length by platform", "analytics/product", DA),
    _case("budget-variance", "Budget vs actual variance", "Compare actual spend with budget per department this quarter", "finance/reporting", DA),
    _case("cash-runway", "Cash runway estimate", "How many months of runway do we have at the current burn rate?", "finance/reporting", DA),
    _case("invoice-aging", "Accounts receivable aging", "List overdue invoices grouped by aging bucket", "finance/reporting", DA),
    _case("expense-anomaly", "Unusual expenses", "Find expense claims that look unusual compared with peers", "finance/audit", DA),
    _case("vendor-spend", "Spend by vendor", "Which vendors did we pay the most in the last six months?", "finance/reporting", DA),
    _case("refund-policy", "Refund policy answer", "What is our refund policy for annual subscriptions?", "support/policies", IR),
    _case("sla-policy", "Support SLA lookup", "What response time do we promise enterprise customers?", "support/policies", IR),
    _case("ticket-volume", "Ticket volume by category", "How many support tickets per category did we get last week?", "support/tickets", DA),
    _case("ticket-root-cause", "Root causes of tickets", "What are the top root causes behind login-related tickets?", "support/tickets", DA, IR),
    _case("csat-agent", "CSAT by support agent", "Show customer satisfaction score per support agent", "support/tickets", DA),
    _case("escalation-guide", "Escalation procedure", "How do I escalate a P1 incident to the on-call engineer?", "support/policies", IR),
    _case("gdpr-request", "GDPR data request handling", "How should we handle a customer's request to delete their data?", "compliance/privacy", IR),
    _case("data-retention", "Data retention rules", "How long do we keep customer logs and backups?", "compliance/privacy", IR),
    _case("soc2-evidence", "SOC 2 evidence lookup", "Where is the evidence for our access review control?", "compliance/audit", IR),
    _case("access-review", "Quarterly access review", "List users with admin access who have not logged in for 90 days", "compliance/audit", DA),
    _case("incident-summary", "Incident postmortem summary", "Summarise last week's database outage postmortem", "ops/incidents", IR),
    _case("error-budget", "Error budget burn", "How much of this month's error budget has the API burned?", "ops/reliability", DA),
    _case("latency-regression", "Latency regression finder", "Which endpoints got slower after the last deploy?", "ops/reliability", DA),
    _case("capacity-plan", "Database capacity plan", "When will the primary database run out of disk at current growth?", "ops/capacity", DA),
    _case("runbook-lookup", "Runbook lookup", "What is the runbook for a full Redis memory alert?", "ops/incidents", IR),
    _case("deploy-frequency", "Deployment frequency", "How many production deploys did each team make per week?", "engineering/metrics", DA),
    _case("pr-cycle-time", "Pull request cycle time", "What is the median time from PR open to merge per repository?", "engineering/metrics", DA),
    _case("flaky-tests", "Flaky test report", "Which tests failed intermittently in CI over the last month?", "engineering/quality", DA),
    _case("api-docs-answer", "API usage question", "How do I paginate through the orders API?", "engineering/docs", IR),
    _case("onboarding-guide", "Engineer onboarding guide", "What should a new backend engineer set up in their first week?", "engineering/docs", IR),
    _case("campaign-roi", "Marketing campaign ROI", "What was the return on ad spend per campaign last quarter?", "analytics/marketing", DA),
    _case("channel-attribution", "Channel attribution", "Which acquisition channels drive the most paid conversions?", "analytics/marketing", DA),
    _case("email-open-rates", "Email open and click rates", "Compare open and click rates of last month's newsletters", "analytics/marketing", DA),
    _case("seo-keywords", "SEO keyword performance", "Which search keywords bring the most organic signups?", "analytics/marketing", DA),
    _case("competitor-pricing", "Competitor pricing summary", "Summarise what we know about competitors' pricing tiers", "strategy/market", IR),
    _case("market-size", "Market size estimate", "Estimate the addressable market for mid-size logistics companies", "strategy/market", IR, DA),
    _case("inventory-stockout", "Stock-out risk", "Which SKUs are likely to run out of stock in the next two weeks?", "operations/inventory", DA),
    _case("supplier-delays", "Supplier delivery delays", "Which suppliers delivered late most often this quarter?", "operations/supply", DA),
    _case("warehouse-throughput", "Warehouse throughput", "Compare orders shipped per hour across warehouses", "operations/logistics", DA),
    _case("shipping-cost", "Shipping cost per order", "How did shipping cost per order change after the carrier switch?", "operations/logistics", DA),
    _case("hr-attrition", "Employee attrition", "What is the voluntary attrition rate by department this year?", "people/analytics", DA),
    _case("fax-orders", "Fax order import", "Import the orders received by fax into the order table", "operations/legacy", DA),
]

# Known failure patterns: slug -> (success probability, dominant error, message factory).
FAILING = {
    "sales-forecast": (0.35, "SQLSyntaxError", lambda r: f"syntax error at or near \"{r.choice(['OVER', 'PARTITION', 'INTERVAL'])}\" at character {r.randint(40, 400)}"),
    "churn-drivers": (0.40, "TimeoutError", lambda r: f"query exceeded statement timeout of {r.choice([5000, 10000])} ms"),
    "competitor-pricing": (0.30, "RetrievalEmpty", lambda r: f"no document above similarity 0.7 for query id {uuid.UUID(int=r.getrandbits(128))}"),
    "market-size": (0.38, "RateLimitError", lambda r: f"LLM rate limit reached: retry after {r.randint(2, 40)} s"),
}
DEGRADING = "ticket-root-cause"
SLOW = "capacity-plan"
# Not run in the last week (their logs are 8..30 days old), so consolidation's "used in the last
# 7 days" rule does not hold them all back; the fax import also fails 4 runs in 5: the demo's
# low-performance archive candidate.
IDLE = ("fax-orders", "shipping-cost", "hr-attrition")
IDLE_WEAK = "fax-orders"
IDLE_MIN_AGE = timedelta(days=8)
# A timeout message states its limit; the recorded time must reach it ("statement timeout of
# 5000 ms" after 591 ms would be a figure nobody can trust).
_STATED_LIMIT = re.compile(r"(\d+) (ms|s)\b")


def stated_limit_ms(message: str) -> int | None:
    """The limit a timeout message states, in ms ("... of 5000 ms", "... after 12 s")."""
    match = _STATED_LIMIT.search(message)
    if match is None:
        return None
    return int(match.group(1)) * (1 if match.group(2) == "ms" else 1000)


OTHER_ERRORS = [
    ("ValidationError", lambda r: f"column \"{r.choice(['region', 'amount', 'created'])}\" does not exist"),
    ("TimeoutError", lambda r: f"agent timed out after {r.randint(10, 30)} s"),
    ("LLMError", lambda r: "model returned invalid JSON"),
]


def demo_case_id(slug: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, f"case:{slug}")


# Plans that carry the SQL that answered them (as a case filed from a session does), so the demo
# replays them on its sample database without an LLM. The sample's orders run from January to
# mid-November 2026.
DEMO_SQL = {
    "rev-region": "SELECT region, ROUND(SUM(total), 2) AS revenue FROM orders "
                  "WHERE order_date >= '2026-07-01' AND order_date < '2026-10-01' "
                  "GROUP BY region ORDER BY revenue DESC",
    "top-products": "SELECT p.name AS product, ROUND(SUM(i.quantity * i.unit_price), 2) AS revenue "
                    "FROM order_items AS i JOIN products AS p ON p.id = i.product_id "
                    "GROUP BY p.name ORDER BY revenue DESC LIMIT 10",
    "ticket-volume": "SELECT category, COUNT(*) AS tickets FROM support_tickets "
                     "GROUP BY category ORDER BY tickets DESC",
    "ltv-segment": "SELECT c.segment, ROUND(SUM(o.total) / COUNT(DISTINCT c.id), 2) AS revenue_per_customer "
                   "FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
                   "GROUP BY c.segment ORDER BY revenue_per_customer DESC",
}


# What seed_demo asks the supervisor once: close enough to "rev-region" to replay its plan.
DEMO_SESSION_QUERY = "Show revenue by region for the last quarter"


def _plan(case: DemoCase) -> list[dict]:
    steps: list[dict] = []
    if "information_retrieval" in case.agents:
        steps.append({"agent": IR, "action": f"Find documents about: {case.title.lower()}"})
    if "data_analysis" in case.agents:
        step = {"agent": DA, "action": f"Query the analytics database: {case.query}"}
        if case.slug in DEMO_SQL:
            step["sql"] = DEMO_SQL[case.slug]
        steps.append(step)
    steps.append({"agent": "supervisor", "action": "Summarise the findings for the user"})
    return steps


def seed_cases(*, on_progress: Callable[[int], None] | None = None) -> int:
    """Create the demo cases that are missing; returns how many were created."""
    existing = set(Case.objects.filter(pk__in=[demo_case_id(c.slug) for c in DEMO_CASES]).values_list("pk", flat=True))
    created = 0
    for case in DEMO_CASES:
        if demo_case_id(case.slug) not in existing:
            case_services.case_create(
                case_id=demo_case_id(case.slug),
                title=case.title,
                query=case.query,
                plan=_plan(case),
                category=case.category,
                tags=[case.category.split("/")[0], *case.agents],
                actor=DEMO_ACTOR,
            )
            created += 1
        if on_progress:
            on_progress(1)
    return created


def _outcome(rng: random.Random, slug: str, age: timedelta) -> tuple[bool, str, str, int]:
    success, error_type, message, latency = _drawn_outcome(rng, slug, age)
    if error_type == "TimeoutError" and (limit := stated_limit_ms(message)) is not None:
        # Timed out: the run lasted its limit plus the time to notice and report it.
        latency = max(latency, limit + rng.randint(5, 250))
    return success, error_type, message, latency


def _drawn_outcome(rng: random.Random, slug: str, age: timedelta) -> tuple[bool, str, str, int]:
    latency = int(rng.lognormvariate(6.2, 0.45))  # median ~ 500 ms
    if slug == SLOW:
        latency = int(rng.lognormvariate(7.9, 0.35))  # median ~ 2.7 s
    if slug in FAILING:
        rate, error_type, message = FAILING[slug]
        if rng.random() < rate:
            return True, "", "", latency
        if rng.random() < 0.8:
            return False, error_type, message(rng), latency
    elif slug == IDLE_WEAK:
        if rng.random() < 0.2:
            return True, "", "", latency
        return False, "ValidationError", "fax page could not be read: no order number found", latency
    elif slug == DEGRADING and age < timedelta(hours=24):
        if rng.random() < 0.40:
            return True, "", "", latency
        return False, "ToolError", f"ticket search tool returned HTTP {rng.choice([500, 502, 503])}", latency
    elif rng.random() < 0.92:
        return True, "", "", latency
    error_type, message = rng.choice(OTHER_ERRORS)
    return False, error_type, message(rng), latency


def demo_log_payloads(*, now: datetime, count: int = LOG_COUNT, seed: int = 42) -> list[dict]:
    """Deterministic log payloads spread over the last 30 days, weighted towards popular cases."""
    rng = random.Random(seed)
    slugs = [case.slug for case in DEMO_CASES]
    weights = [1.0 / (rank + 3) for rank in range(len(slugs))]
    for special in (*FAILING, DEGRADING, SLOW, *IDLE):
        weights[slugs.index(special)] = max(weights[slugs.index(special)], 0.08)  # enough runs to analyse
    # The anomaly test needs 20 runs in the last 24 h and 50 in the 7 days before, even for a
    # small --logs: the degrading case is a busy one, and its history is that week.
    weights[slugs.index(DEGRADING)] = 0.2
    payloads = []
    for index in range(count):
        slug = rng.choices(slugs, weights)[0]
        age = timedelta(seconds=rng.uniform(0, LOG_DAYS * 86400))
        if slug == DEGRADING:
            recent = rng.random() < 0.3
            age = timedelta(seconds=rng.uniform(0, 86400) if recent else rng.uniform(86400, 8 * 86400))
        elif slug in IDLE:
            age = timedelta(seconds=rng.uniform(IDLE_MIN_AGE.total_seconds(), LOG_DAYS * 86400))
        success, error_type, message, latency = _outcome(rng, slug, age)
        tokens_in = rng.randint(300, 2500)
        tokens_out = rng.randint(50, 600)
        payloads.append(
            {
                "id": str(uuid.uuid5(DEMO_NAMESPACE, f"log:{index}")),
                "case_id": str(demo_case_id(slug)),
                "success": success,
                "error_type": error_type,
                "error_message": message,
                "execution_time_ms": latency,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost_usd": round(tokens_in * 0.15e-6 + tokens_out * 0.6e-6, 6),
                "model": "gpt-4o-mini",
                "context": {"source": "seed_demo"},
                "created_at": (now - age).isoformat(),
            }
        )
    return payloads


def seed_logs(*, now: datetime | None = None, count: int = LOG_COUNT, on_progress: Callable[[int], None] | None = None) -> int:
    """Store the demo logs once (re-runs are no-ops) and record case usage; returns new logs."""
    now = now or timezone.now()
    payloads = demo_log_payloads(now=now, count=count)
    created = 0
    for start in range(0, len(payloads), ingestion.MAX_BATCH):
        chunk = payloads[start : start + ingestion.MAX_BATCH]
        created += ingestion.logs_ingest(records=ingestion.parse_batch(chunk)).created
        if on_progress:
            on_progress(len(chunk))
    if created:
        uses: dict[str, list[str]] = {}
        for payload in payloads:
            uses.setdefault(payload["case_id"], []).append(payload["created_at"])
        for case_id, moments in uses.items():
            case_services.case_record_use(
                case_ids=[uuid.UUID(case_id)], used_at=datetime.fromisoformat(max(moments)), times=len(moments)
            )
    return created
