import torch

from training import data
from training.nets import Probabilities, Rescale, ServingModel, Standardize, mlp
from training.pipeline import build_model
from training.tasks import IRIS, REGRESSION


def test_standardize_uses_training_statistics() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    normalize = Standardize.fit(x, per_feature=True)
    out = normalize(x)
    assert torch.allclose(out.mean(dim=0), torch.zeros(2))
    assert torch.allclose(out.std(dim=0), torch.ones(2))


def test_constant_feature_does_not_divide_by_zero() -> None:
    x = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    assert torch.isfinite(Standardize.fit(x, per_feature=True)(x)).all()


def test_raw_iris_in_gives_the_probabilities_of_the_normalised_network() -> None:
    splits = data.load_iris(seed=0)
    torch.manual_seed(0)
    model = build_model(IRIS, splits.train).eval()
    raw = data.read_iris().x
    mean, std = splits.train.x.mean(dim=0), splits.train.x.std(dim=0)
    expected = torch.softmax(model.net((raw - mean) / std), dim=1)
    with torch.inference_mode():
        probabilities = model(raw)
    assert torch.allclose(probabilities, expected, atol=1e-6)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(150))


def test_regression_head_maps_back_to_target_units() -> None:
    splits = data.load_regression(seed=0)
    model = build_model(REGRESSION, splits.train)
    assert isinstance(model.head, Rescale)
    assert model.head.mean.item() == splits.train.y.mean().item()
    standardised = torch.tensor([[0.0], [1.0]])
    assert torch.allclose(
        model.head(standardised).squeeze(1),
        torch.stack([model.head.mean, model.head.mean + model.head.std]).squeeze(1),
    )


def test_mlp_layout() -> None:
    net = mlp(784, (512, 256), 10, dropout=0.2)
    widths = [layer.out_features for layer in net if isinstance(layer, torch.nn.Linear)]
    assert widths == [512, 256, 10]
    model = ServingModel(Standardize(torch.zeros(1), torch.ones(1)), net, Probabilities()).eval()
    assert model(torch.rand(5, 784)).shape == (5, 10)
