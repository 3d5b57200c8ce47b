"""What only the synthetic world or a benchmark uses: evaluation against the oracle
(``oracle``, ``evaluate_plays``) and the benches. No stage imports it; the CLI does."""
