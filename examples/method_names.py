"""Display names of the methods, shared by the example scripts' figures."""

TITLES = {
    "bbh": "Bayes by Hypernet",
    "ml": "Maximum likelihood",
    "mc_dropout": "MC dropout",
    "bbb": "Bayes by Backprop",
    "deep_ensemble": "Deep ensemble",
}
