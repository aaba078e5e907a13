"""The naive batch scoring job, a baseline: one process reads every object of the window into
one pandas DataFrame, predicts with Keras in large batches, and writes one Parquet file.

python -m bench.naive_pandas_job --bucket B --prefix P --model-dir D --output-key K
(S3 settings in LOOPLINE_S3, as for the real job.)
"""

from __future__ import annotations

import argparse
import io
import os
import sys

PREDICT_BATCH = 65_536  # as large as the real job's Arrow batches: not the naive default of 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="naive-pandas-job")
    for name in ("--bucket", "--prefix", "--model-dir", "--output-key"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)

    import pandas as pd
    import tensorflow as tf
    from loopline.serving.artifacts import load_model
    from loopline.spec import load_spec
    from loopline.storage.settings import S3Settings

    spec = load_spec(os.environ["LOOPLINE_SPEC"])
    client = S3Settings.from_json(os.environ["LOOPLINE_S3"]).boto3_client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=args.bucket, Prefix=args.prefix
        )
        for item in page.get("Contents", [])
    ]
    frames = [
        pd.read_parquet(io.BytesIO(client.get_object(Bucket=args.bucket, Key=key)["Body"].read()))
        for key in keys
    ]
    frame = pd.concat(frames, ignore_index=True)
    del frames
    model = load_model(args.model_dir)
    # Keras refuses numpy object arrays of strings: every column goes in as a tensor.
    inputs = {name: tf.constant(frame[name].to_numpy()) for name in spec.model.features.all}
    scores = model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    output = frame[[spec.data.key, spec.data.timestamp, spec.model.label]].assign(score=scores)
    buffer = io.BytesIO()
    output.to_parquet(buffer, compression="zstd", index=False)
    client.put_object(Bucket=args.bucket, Key=args.output_key, Body=buffer.getvalue())
    print(f"NAIVE_RESULT {len(output)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
