from graphrec_lab.reporting import mean_std


def test_mean_std_formats_seeds():
    assert mean_std([]) == "-"
    assert mean_std([0.25]) == "0.2500"
    assert mean_std([1.0, 3.0], digits=1) == "2.0 ± 1.4"
