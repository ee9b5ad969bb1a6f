"""Valid domain requests for the test models, with overrides."""

from server.api.gen.riskserve.v1 import scoring_pb2

TIMESTAMP_14H = 1_704_067_200 + 14 * 3600  # 2024-01-01 14:00 UTC


def transaction(
    transaction_id: str = "t-1", behaviour: dict | None = None, **fields
) -> scoring_pb2.Transaction:
    values = dict(
        transaction_id=transaction_id,
        card_id="tok-card-1",
        merchant_id="m-1",
        amount=42.5,
        currency="USD",
        mcc="5411",
        card_country="US",
        merchant_country="US",
        channel="card_present",
        entry_mode="chip",
        timestamp=TIMESTAMP_14H,
    )
    values.update(fields)
    aggregates = dict(
        txn_count_1h=1,
        txn_count_24h=4,
        amount_sum_1h=42.5,
        amount_sum_24h=180.0,
        seconds_since_last_txn=5400,
        distance_from_home_km=3.2,
    )
    aggregates.update(behaviour or {})
    return scoring_pb2.Transaction(behaviour=scoring_pb2.BehaviourAggregates(**aggregates), **values)


def risky_transaction(transaction_id: str = "t-risky") -> scoring_pb2.Transaction:
    return transaction(
        transaction_id,
        amount=900.0,
        entry_mode="manual",
        channel="ecommerce",
        behaviour=dict(txn_count_1h=6, distance_from_home_km=400, is_new_device=True),
    )


def application(application_id: str = "a-1", **fields) -> scoring_pb2.Application:
    values = dict(
        application_id=application_id,
        annual_income=65000,
        debt_to_income=0.25,
        revolving_utilization=0.3,
        delinquencies_2y=0,
        inquiries_6m=1,
        credit_history_months=120,
        loan_amount=15000,
        term_months=36,
        employment_years=6,
        open_accounts=8,
        purpose="car",
        home_ownership="mortgage",
    )
    values.update(fields)
    return scoring_pb2.Application(**values)
