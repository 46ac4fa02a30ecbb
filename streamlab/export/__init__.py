"""Export proven pipelines to Apache Beam, AWS Lambda and Apache Flink, and verify the exports on the same data.

Nothing here imports Apache Beam, boto3 or moto until an export is verified.

Examples
--------
>>> from streamlab import export
>>> sorted(export.__all__)
['ExportedFiles', 'VerificationReport', 'export_main', 'to_beam', 'to_flink', 'to_lambda', 'verify']
"""

from streamlab.export._cli import export_main
from streamlab.export.aws_lambda import to_lambda
from streamlab.export.beam import ExportedFiles, to_beam
from streamlab.export.flink import to_flink

# bound after the submodule import, so ``streamlab.export.verify`` is the function
from streamlab.export.verify import VerificationReport, verify

__all__ = ["ExportedFiles", "VerificationReport", "export_main", "to_beam", "to_flink", "to_lambda", "verify"]
