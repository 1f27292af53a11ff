"""The embedded world: a Held–Suarez atmosphere from dinosaur (extra ``[world]``).

* :mod:`.simulator` — the simulator, its cache and the train / validation / test splits;
* :mod:`.dynamics` — the dynamical core it runs (dinosaur's Held–Suarez model, jitted);
* :mod:`.tracer_anomalies` — re-runs with extra tracers (transport tests and training data).
"""
