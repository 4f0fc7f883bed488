# Data stages: raw .csd (generated or downloaded) -> word-level alignment -> padded per-split cache; or, for a
# pickle source, the pickle -> the same cache.


rule generate:
    output:
        **{role: f"resources/raw/{{dataset}}/{role}.csd" for role in RAW_ROLES},
        glove="resources/raw/{dataset}/glove.txt",
        latents="resources/raw/{dataset}/latents.h5",
    input:
        code=sources("generate"),
    params:
        spec=lambda wildcards: spec(wildcards.dataset, "source", "synthetic"),
    wildcard_constraints:
        dataset=names_with_source("synthetic"),
    log:
        "logs/{dataset}/generate.log",
    benchmark:
        "logs/{dataset}/generate.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider generate --spec {params.spec:q} --out-dir resources/raw/{wildcards.dataset} > {log} 2>&1"


rule download:
    output:
        **{role: f"resources/raw/{{dataset}}/{role}.csd" for role in RAW_ROLES},
    input:
        code=sources("download"),
    params:
        spec=lambda wildcards: spec(wildcards.dataset, "source", "cmu"),
    wildcard_constraints:
        dataset=names_with_source("cmu"),
    log:
        "logs/{dataset}/download.log",
    benchmark:
        "logs/{dataset}/download.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    conda:
        ENV
    shell:
        "rider download --spec {params.spec:q} --out-dir resources/raw/{wildcards.dataset} > {log} 2>&1"


rule download_vectors:
    output:
        glove_vectors="resources/raw/{dataset}/glove_vectors.csd",
    input:
        code=sources("download"),
    params:
        spec=lambda wildcards: spec(wildcards.dataset, "source", "cmu"),
    wildcard_constraints:
        dataset=names_with_source("cmu"),
    log:
        "logs/{dataset}/download_vectors.log",
    benchmark:
        "logs/{dataset}/download_vectors.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    conda:
        ENV
    shell:
        "rider download --spec {params.spec:q} --roles glove_vectors --out-dir resources/raw/{wildcards.dataset}"
        " > {log} 2>&1"


rule labels:
    output:
        labels="resources/raw/{dataset}/labels.csd",
        transcripts="resources/raw/{dataset}/transcripts.csv",
    input:
        unpack(shared_files),
        code=sources("labels"),
    params:
        folds=lambda wildcards: config["datasets"][wildcards.dataset]["folds"],
    wildcard_constraints:
        dataset=names_with_labels_from_table(),
    log:
        "logs/{dataset}/labels.log",
    benchmark:
        "logs/{dataset}/labels.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "rider labels --segment-table {input.segment_table:q} --text-table {input.text_table:q} --folds {params.folds}"
        " --labels-out {output.labels:q} --transcripts-out {output.transcripts:q} > {log} 2>&1"


rule transcribe:
    output:
        words="resources/raw/{dataset}/words.csd",
    input:
        unpack(transcript_files),
        code=sources("transcribe"),
    wildcard_constraints:
        dataset=names_with_source("transcripts"),
    log:
        "logs/{dataset}/transcribe.log",
    benchmark:
        "logs/{dataset}/transcribe.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "rider transcribe --labels {input.labels:q} --segments {input.segments:q} --out {output.words:q} > {log} 2>&1"


rule align:
    output:
        "resources/aligned/{dataset}.h5",
    input:
        unpack(raw_files),
        code=sources("align"),
    params:
        spec=lambda wildcards: spec(wildcards.dataset, "source", "aligner"),
        aligner=lambda wildcards: config["datasets"][wildcards.dataset]["aligner"],
        # Audio and vision when the dataset has them (modalities; a text-only dataset aligns words to labels) and
        # the SDK's word vectors when its GloVe features come from them (glove_vectors).
        streams=lambda wildcards, input: " ".join(
            f"--{role.replace('_', '-')} {shlex.quote(input[role])}"
            for role in ("audio", "vision", "glove_vectors")
            if role in input.keys()
        ),
    log:
        "logs/{dataset}/align.log",
    benchmark:
        "logs/{dataset}/align.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    shell:
        "rider align --spec {params.spec:q} --aligner {params.aligner} --words {input.words:q}"
        " {params.streams} --labels {input.labels:q} --out {output:q} > {log} 2>&1"


rule cache:
    output:
        "resources/cache/{dataset}.h5",
    input:
        unpack(latents_file),
        aligned="resources/aligned/{dataset}.h5",
        glove=glove_file,
        code=sources("cache"),
    params:
        # source: recorded in the cache's provenance with the rest of the section it was built from.
        spec=lambda wildcards: spec(wildcards.dataset, "source", "folds", "cache", "text_encoder"),
        latents=lambda wildcards, input: f"--latents {input.latents}" if "latents" in input.keys() else "",
        glove=lambda wildcards, input: f"--glove {shlex.quote(str(input.glove))}" if input.glove else "",
    wildcard_constraints:
        dataset=names_except_source("pickle"),
    log:
        "logs/{dataset}/cache.log",
    benchmark:
        "logs/{dataset}/cache.benchmark.tsv"
    # A text encoder runs most of the stage's time in torch, which uses as many threads as the job has.
    threads: lambda wildcards: 2 if config["datasets"][wildcards.dataset]["text_encoder"]["model"] else 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "rider cache --spec {params.spec:q} --name {wildcards.dataset} --aligned {input.aligned:q}"
        " {params.glove} {params.latents} --out {output:q} > {log} 2>&1"


rule pickle:
    output:
        "resources/cache/{dataset}.h5",
    input:
        pickle=pickle_file,
        code=sources("pickle"),
    params:
        spec=lambda wildcards: spec(wildcards.dataset, "source", "pickle", "cache"),
    wildcard_constraints:
        dataset=names_with_source("pickle"),
    log:
        "logs/{dataset}/pickle.log",
    benchmark:
        "logs/{dataset}/pickle.benchmark.tsv"
    threads: 1
    resources:
        # The whole pickle is in memory while its features are cleaned: 1.1-1.5 times the file (benchmarks/
        # pickle_source.py: 3.6 GB for a MOSEI-sized MulT pickle of 2.4 GB, 4.6 GB for an MMSA one of 4.0 GB).
        mem_mb=lambda wildcards, input: max(4000, int(1.5 * input.size_mb) + 1000),
        runtime=30,
    conda:
        ENV
    shell:
        "rider pickle --spec {params.spec:q} --name {wildcards.dataset} --pickle {input.pickle:q} --out {output:q}"
        " > {log} 2>&1"


rule data:
    input:
        expand("resources/cache/{dataset}.h5", dataset=run_datasets()),
