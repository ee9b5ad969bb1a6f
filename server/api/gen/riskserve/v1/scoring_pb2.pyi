from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchAnswerLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PER_TRANSACTION: _ClassVar[BatchAnswerLayout]
    COLUMNS: _ClassVar[BatchAnswerLayout]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    APPROVE: _ClassVar[Decision]
    REVIEW: _ClassVar[Decision]
    DECLINE: _ClassVar[Decision]
PER_TRANSACTION: BatchAnswerLayout
COLUMNS: BatchAnswerLayout
DECISION_UNSPECIFIED: Decision
APPROVE: Decision
REVIEW: Decision
DECLINE: Decision

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "card_id", "merchant_id", "amount", "currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode", "timestamp", "behaviour", "model", "features", "categorical_features", "model_version")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoricalFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    CARD_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    card_id: str
    merchant_id: str
    amount: float
    currency: str
    mcc: str
    card_country: str
    merchant_country: str
    channel: str
    entry_mode: str
    timestamp: int
    behaviour: BehaviourAggregates
    model: str
    features: _containers.ScalarMap[str, float]
    categorical_features: _containers.ScalarMap[str, str]
    model_version: str
    def __init__(self, transaction_id: _Optional[str] = ..., card_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., amount: _Optional[float] = ..., currency: _Optional[str] = ..., mcc: _Optional[str] = ..., card_country: _Optional[str] = ..., merchant_country: _Optional[str] = ..., channel: _Optional[str] = ..., entry_mode: _Optional[str] = ..., timestamp: _Optional[int] = ..., behaviour: _Optional[_Union[BehaviourAggregates, _Mapping]] = ..., model: _Optional[str] = ..., features: _Optional[_Mapping[str, float]] = ..., categorical_features: _Optional[_Mapping[str, str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class BehaviourAggregates(_message.Message):
    __slots__ = ("txn_count_1h", "txn_count_24h", "amount_sum_1h", "amount_sum_24h", "seconds_since_last_txn", "distance_from_home_km", "is_new_merchant", "is_new_device")
    TXN_COUNT_1H_FIELD_NUMBER: _ClassVar[int]
    TXN_COUNT_24H_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SUM_1H_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SUM_24H_FIELD_NUMBER: _ClassVar[int]
    SECONDS_SINCE_LAST_TXN_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FROM_HOME_KM_FIELD_NUMBER: _ClassVar[int]
    IS_NEW_MERCHANT_FIELD_NUMBER: _ClassVar[int]
    IS_NEW_DEVICE_FIELD_NUMBER: _ClassVar[int]
    txn_count_1h: float
    txn_count_24h: float
    amount_sum_1h: float
    amount_sum_24h: float
    seconds_since_last_txn: float
    distance_from_home_km: float
    is_new_merchant: bool
    is_new_device: bool
    def __init__(self, txn_count_1h: _Optional[float] = ..., txn_count_24h: _Optional[float] = ..., amount_sum_1h: _Optional[float] = ..., amount_sum_24h: _Optional[float] = ..., seconds_since_last_txn: _Optional[float] = ..., distance_from_home_km: _Optional[float] = ..., is_new_merchant: _Optional[bool] = ..., is_new_device: _Optional[bool] = ...) -> None: ...

class TransactionBatch(_message.Message):
    __slots__ = ("transactions", "model", "answer_layout", "model_version")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    model: str
    answer_layout: BatchAnswerLayout
    model_version: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., model: _Optional[str] = ..., answer_layout: _Optional[_Union[BatchAnswerLayout, str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "precision", "gate_verdict")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    GATE_VERDICT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    precision: str
    gate_verdict: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., precision: _Optional[str] = ..., gate_verdict: _Optional[str] = ...) -> None: ...

class FraudScore(_message.Message):
    __slots__ = ("transaction_id", "probability", "risk_score", "decision", "model", "server_latency_us")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    probability: float
    risk_score: int
    decision: Decision
    model: ModelRef
    server_latency_us: int
    def __init__(self, transaction_id: _Optional[str] = ..., probability: _Optional[float] = ..., risk_score: _Optional[int] = ..., decision: _Optional[_Union[Decision, str]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., server_latency_us: _Optional[int] = ...) -> None: ...

class FraudScoreBatch(_message.Message):
    __slots__ = ("scores", "transaction_ids", "probabilities", "risk_scores", "decisions", "model", "server_latency_us")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORES_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[FraudScore]
    transaction_ids: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    risk_scores: _containers.RepeatedScalarFieldContainer[int]
    decisions: _containers.RepeatedScalarFieldContainer[Decision]
    model: ModelRef
    server_latency_us: int
    def __init__(self, scores: _Optional[_Iterable[_Union[FraudScore, _Mapping]]] = ..., transaction_ids: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Iterable[float]] = ..., risk_scores: _Optional[_Iterable[int]] = ..., decisions: _Optional[_Iterable[_Union[Decision, str]]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., server_latency_us: _Optional[int] = ...) -> None: ...

class Application(_message.Message):
    __slots__ = ("application_id", "annual_income", "debt_to_income", "revolving_utilization", "delinquencies_2y", "inquiries_6m", "credit_history_months", "loan_amount", "term_months", "employment_years", "open_accounts", "purpose", "home_ownership", "model", "features", "categorical_features", "model_version", "applicant_id")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoricalFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_INCOME_FIELD_NUMBER: _ClassVar[int]
    DEBT_TO_INCOME_FIELD_NUMBER: _ClassVar[int]
    REVOLVING_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCIES_2Y_FIELD_NUMBER: _ClassVar[int]
    INQUIRIES_6M_FIELD_NUMBER: _ClassVar[int]
    CREDIT_HISTORY_MONTHS_FIELD_NUMBER: _ClassVar[int]
    LOAN_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_YEARS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    HOME_OWNERSHIP_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLICANT_ID_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    annual_income: float
    debt_to_income: float
    revolving_utilization: float
    delinquencies_2y: float
    inquiries_6m: float
    credit_history_months: float
    loan_amount: float
    term_months: float
    employment_years: float
    open_accounts: float
    purpose: str
    home_ownership: str
    model: str
    features: _containers.ScalarMap[str, float]
    categorical_features: _containers.ScalarMap[str, str]
    model_version: str
    applicant_id: str
    def __init__(self, application_id: _Optional[str] = ..., annual_income: _Optional[float] = ..., debt_to_income: _Optional[float] = ..., revolving_utilization: _Optional[float] = ..., delinquencies_2y: _Optional[float] = ..., inquiries_6m: _Optional[float] = ..., credit_history_months: _Optional[float] = ..., loan_amount: _Optional[float] = ..., term_months: _Optional[float] = ..., employment_years: _Optional[float] = ..., open_accounts: _Optional[float] = ..., purpose: _Optional[str] = ..., home_ownership: _Optional[str] = ..., model: _Optional[str] = ..., features: _Optional[_Mapping[str, float]] = ..., categorical_features: _Optional[_Mapping[str, str]] = ..., model_version: _Optional[str] = ..., applicant_id: _Optional[str] = ...) -> None: ...

class ReasonCode(_message.Message):
    __slots__ = ("code", "feature", "description", "contribution")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    feature: str
    description: str
    contribution: float
    def __init__(self, code: _Optional[str] = ..., feature: _Optional[str] = ..., description: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

class CreditAssessment(_message.Message):
    __slots__ = ("application_id", "probability_of_default", "score", "decision", "reasons", "model", "server_latency_us")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OF_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    probability_of_default: float
    score: int
    decision: Decision
    reasons: _containers.RepeatedCompositeFieldContainer[ReasonCode]
    model: ModelRef
    server_latency_us: int
    def __init__(self, application_id: _Optional[str] = ..., probability_of_default: _Optional[float] = ..., score: _Optional[int] = ..., decision: _Optional[_Union[Decision, str]] = ..., reasons: _Optional[_Iterable[_Union[ReasonCode, _Mapping]]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., server_latency_us: _Optional[int] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelVersions(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ...) -> None: ...

class ModelVersionStatus(_message.Message):
    __slots__ = ("model", "outcome", "serving", "kept_out_version", "kept_out_reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    KEPT_OUT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KEPT_OUT_REASON_FIELD_NUMBER: _ClassVar[int]
    model: str
    outcome: str
    serving: ModelRef
    kept_out_version: str
    kept_out_reason: str
    def __init__(self, model: _Optional[str] = ..., outcome: _Optional[str] = ..., serving: _Optional[_Union[ModelRef, _Mapping]] = ..., kept_out_version: _Optional[str] = ..., kept_out_reason: _Optional[str] = ...) -> None: ...
