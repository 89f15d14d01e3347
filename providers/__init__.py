"""Built-in image backends. Each registers through the `imagegen.providers` entry-point
group, exactly as a third-party adapter would."""
