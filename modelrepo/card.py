"""The model card: what `card.json` beside every `model.pt` says about the model and its files.

Training writes it, the service validates it before loading the model, and clients read it
from the model's metadata. Tensor names and data types follow Triton's PyTorch backend and the
Open Inference Protocol, so the same repository serves unchanged under Triton.

`input.feature_names` (optional) names the row's columns in order: clients may then send an
instance as an object keyed by them. `input.example` (optional) is one typical row in those
columns' raw units, in the same order: the demo page fills its form with it. Training writes
the training rows' mean (its normalisation's); cards without it stay valid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelrepo.layout import MODEL_FILE

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"

Datatype = Literal["FP32"]

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"  # a card's model name (Triton's are freer)
# A row's width is bounded before anything is sized by it (staging buffers, warm-up batches).
MAX_WIDTH = 1 << 20
SHA256 = r"^[0-9a-f]{64}$"
FLOAT32_MAX = 3.4028234663852886e38  # the largest float32; requests are held to it too


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(_Strict):
    """How an image must look once flattened into the input row."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1] = 1
    color: Literal["grayscale"] = "grayscale"
    value_range: tuple[float, float] = (0.0, 1.0)
    polarity: Literal["white_on_black", "black_on_white"] = "white_on_black"


class InputSpec(_Strict):
    name: str = INPUT_NAME
    datatype: Datatype = "FP32"
    shape: list[int] = Field(description="-1 marks the dynamic batch dimension")
    feature_names: list[str] | None = None
    example: list[float] | None = Field(
        None, description="one typical row, in feature order and raw units (the demo's form)"
    )
    image: ImageSpec | None = None
    description: str = ""

    @property
    def features(self) -> int:
        return self.shape[-1]

    @model_validator(mode="after")
    def _check_shape(self) -> InputSpec:
        if len(self.shape) != 2 or self.shape[0] != -1 or self.shape[1] <= 0:
            raise ValueError("input shape must be [-1, features]")
        if self.shape[1] > MAX_WIDTH:
            raise ValueError(
                f"input shape [-1, {self.shape[1]}] has more than {MAX_WIDTH} features"
            )
        if self.feature_names is not None and len(self.feature_names) != self.shape[1]:
            raise ValueError("feature_names must name every feature")
        if self.feature_names is not None and len(set(self.feature_names)) != self.shape[1]:
            raise ValueError("feature_names must be distinct: requests name features by them")
        if self.example is not None and len(self.example) != self.shape[1]:
            raise ValueError("example must give a value for every feature")
        if self.example is not None and not all(abs(x) <= FLOAT32_MAX for x in self.example):
            raise ValueError("example values must be finite and fit in float32")
        if self.image is not None and self.image.height * self.image.width != self.shape[1]:
            raise ValueError("image height * width must equal the number of features")
        return self


class OutputSpec(_Strict):
    name: str = OUTPUT_NAME
    datatype: Datatype = "FP32"
    shape: list[int]
    class_names: list[str] | None = None
    value_name: str | None = None
    description: str = ""

    @property
    def width(self) -> int:
        return self.shape[-1]

    @model_validator(mode="after")
    def _check_shape(self) -> OutputSpec:
        if len(self.shape) != 2 or self.shape[0] != -1 or not 0 < self.shape[1] <= MAX_WIDTH:
            raise ValueError(f"output shape must be [-1, outputs] with 1..{MAX_WIDTH} outputs")
        return self


class Bar(_Strict):
    """A quality bar the model had to reach on its evaluation data."""

    metric: str
    op: Literal[">=", "<="]
    threshold: float
    value: float
    passed: bool


class DatasetInfo(_Strict):
    description: str
    sizes: dict[str, int]
    # Models trained on a user's own data (newer cards): the file's name, without its directory,
    # and the column predicted.
    source: str | None = None
    target: str | None = None


class TrainingInfo(_Strict):
    seed: int
    epochs: int
    epochs_run: int
    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    device: str
    wall_time_s: float


class ModelSpec(_Strict):
    """What serving a model needs: its name, version, task and tensors. A card is a spec plus
    how the model was made and the digests of its files; a Triton model without a card is
    served from the spec its `config.pbtxt` gives (`modelrepo.triton`)."""

    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    task: Literal["classification", "regression"]
    description: str
    input: InputSpec
    output: OutputSpec

    @model_validator(mode="after")
    def _check_output(self) -> ModelSpec:
        if self.task == "classification" and not self.output.class_names:
            raise ValueError("a classifier's output must name its classes")
        if (
            self.output.class_names is not None
            and len(self.output.class_names) != self.output.width
        ):
            raise ValueError("class_names must name every output column")
        if self.task == "regression" and self.output.value_name is None:
            raise ValueError("a regression output must name its value")
        return self


class ModelCard(ModelSpec):
    name: str = Field(pattern=NAME_PATTERN)
    metrics: dict[str, float]
    bars: list[Bar]
    dataset: DatasetInfo | None = Field(None, description="None: not known (an adopted model)")
    training: TrainingInfo | None = Field(None, description="None: trained elsewhere (adopted)")
    sha256: str = Field(pattern=SHA256, description=f"sha256 of {MODEL_FILE}")
    files: dict[str, Annotated[str, Field(pattern=SHA256)]] = Field(
        default_factory=dict, description="sha256 of each file of the version (newer cards)"
    )
    torch_version: str
    created_at: datetime

    @model_validator(mode="after")
    def _check_files(self) -> ModelCard:
        if self.files.get(MODEL_FILE, self.sha256) != self.sha256:
            raise ValueError(f"files and sha256 disagree on {MODEL_FILE}")
        return self

    def digest_of(self, file_name: str) -> str | None:
        """The sha256 the card records for one of the version's files (None: not listed)."""
        if file_name == MODEL_FILE:
            return self.sha256
        return self.files.get(file_name)
