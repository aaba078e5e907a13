"""The demo feed's numeric columns, importable without numpy or pyarrow (the trigger form
reads their count at DAG-parse time)."""

COMPONENTS = [f"v{i}" for i in range(1, 29)]
NUMERIC_FEATURES = [*COMPONENTS, "amount", "card_age_days"]
