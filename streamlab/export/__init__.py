"""Export proven pipelines to Apache Beam, AWS Lambda, Apache Flink and PySpark, and verify the exports on the same data.

Nothing here imports Apache Beam, boto3, moto or PySpark until an export is verified.

Examples
--------
>>> from streamlab import export
>>> sorted(export.__all__)
['ExportedFiles', 'VerificationReport', 'export_main', 'to_beam', 'to_flink', 'to_lambda', 'to_spark', 'verify', 'write_job_input']
"""

from streamlab.export._cli import export_main
from streamlab.export._input import write_job_input
from streamlab.export.aws_lambda import to_lambda
from streamlab.export.beam import ExportedFiles, to_beam
from streamlab.export.flink import to_flink
from streamlab.export.spark import to_spark

# bound after the submodule import, so ``streamlab.export.verify`` is the function
from streamlab.export.verify import VerificationReport, verify

__all__ = [
    "ExportedFiles",
    "VerificationReport",
    "export_main",
    "to_beam",
    "to_flink",
    "to_lambda",
    "to_spark",
    "verify",
    "write_job_input",
]
