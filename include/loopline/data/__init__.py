"""Validated data as every stage after the gate reads it: the spec's Arrow types, strict
reading of a batch, and the validated objects of a time window."""
