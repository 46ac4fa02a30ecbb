"""placeholder"""
def to_lambda(pipeline, path, **options):
    raise NotImplementedError
def run_lambda(*a, **k):
    raise NotImplementedError
