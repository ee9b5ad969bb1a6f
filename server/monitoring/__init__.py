"""What watches a served model while it serves: INT8 against FP32 on live traffic."""
