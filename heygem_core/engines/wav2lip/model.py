"""The Wav2Lip generator with the official architecture and attribute names (Rudrabha/Wav2Lip,
models/wav2lip.py and models/conv.py), so the public checkpoints load with `strict=True`, and
the checkpoint reader that turns every bad file into `checkpoint_invalid`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from heygem_core.errors import ErrorCode, HeyGemError

FACE_SIZE = 96  # px, side of the square face crop the network sees
FACE_CHANNELS = 6  # masked crop + reference crop, BGR each
MEL_SHAPE = (1, 80, 16)  # one mel window: 80 bins x 16 steps (200 ms)
N_STATE_ENTRIES = 352  # tensors in the official state dict, num_batches_tracked included
N_PARAMETERS = 36_298_035  # trainable parameters, about 36.3 M
DATA_PARALLEL_PREFIX = "module."  # the official files were saved from nn.DataParallel
EXPECTED = f"the Wav2Lip generator ({N_STATE_ENTRIES} state-dict entries, 36.3 M parameters)"


class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU; with `residual` the input is added before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int | tuple[int, int],
                 padding: int, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding),
                                        nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    """Transposed conv + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, padding: int,
                 output_padding: int = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(channels: int) -> Conv2d:
    return Conv2d(channels, channels, 3, 1, 1, residual=True)


def _down(cin: int, cout: int, n_res: int) -> nn.Sequential:
    return nn.Sequential(Conv2d(cin, cout, 3, 2, 1), *(_res(cout) for _ in range(n_res)))


def _up(cin: int, cout: int, n_res: int, stride: int = 2) -> nn.Sequential:
    padding, output_padding = (1, 1) if stride == 2 else (0, 0)
    return nn.Sequential(Conv2dTranspose(cin, cout, 3, stride, padding, output_padding),
                         *(_res(cout) for _ in range(n_res)))


class Wav2Lip(nn.Module):
    """Face encoder (96x96 -> 1x1), audio encoder (80x16 mel -> 1x1), and a decoder with skip
    connections from every face-encoder block back up to 96x96 BGR in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, 16, 7, 1, 3)),  # 96x96
            _down(16, 32, 2),  # 48x48
            _down(32, 64, 3),  # 24x24
            _down(64, 128, 2),  # 12x12
            _down(128, 256, 2),  # 6x6
            _down(256, 512, 1),  # 3x3
            nn.Sequential(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),  # 1x1
        ])
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), _res(32), _res(32),
            Conv2d(32, 64, 3, (3, 1), 1), _res(64), _res(64),
            Conv2d(64, 128, 3, 3, 1), _res(128), _res(128),
            Conv2d(128, 256, 3, (3, 2), 1), _res(256),
            Conv2d(256, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(512, 512, 1, 1, 0)),  # 1x1
            _up(1024, 512, 1, stride=1),  # 3x3
            _up(1024, 512, 2),  # 6x6
            _up(768, 384, 2),  # 12x12
            _up(512, 256, 2),  # 24x24
            _up(320, 128, 2),  # 48x48
            _up(160, 64, 2),  # 96x96
        ])
        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0),
                                          nn.Sigmoid())

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor) -> torch.Tensor:
        """audio (B, 1, 80, 16), faces (B, 6, 96, 96) -> (B, 3, 96, 96); the 5-D training
        layout, audio (B, T, 1, 80, 16) and faces (B, 6, T, 96, 96), is folded and unfolded."""
        batch = audio_sequences.size(0)
        folded = face_sequences.dim() > 4
        if folded:
            audio_sequences = torch.cat([audio_sequences[:, i] for i in range(audio_sequences.size(1))], 0)
            face_sequences = torch.cat([face_sequences[:, :, i] for i in range(face_sequences.size(2))], 0)
        x = self.audio_encoder(audio_sequences)
        feats = []
        f = face_sequences
        for block in self.face_encoder_blocks:
            f = block(f)
            feats.append(f)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        out = self.output_block(x)
        if folded:
            out = torch.stack(torch.split(out, batch, dim=0), dim=2)
        return out


def save_checkpoint(model: Wav2Lip, path: str | Path) -> Path:
    """Write `model` in the official file layout: `module.`-prefixed keys under `state_dict`."""
    path = Path(path)
    state = {DATA_PARALLEL_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "optimizer": None, "global_step": 0, "global_epoch": 0}, path)
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu") -> Wav2Lip:
    """Read a Wav2Lip checkpoint strictly into a new model in eval mode on `device`.

    A missing, unreadable, truncated or wrong-architecture file raises `checkpoint_invalid`
    naming the file and what was expected."""
    path = Path(path)
    state = _read_state_dict(path)
    model = Wav2Lip()
    _check_state_dict(path, state, model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise HeyGemError(ErrorCode.CHECKPOINT_INVALID, f"{path.name}: file not found in {path.parent}")
    try:
        # weights_only: the file is data, never code (the official files load this way too)
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HeyGemError(ErrorCode.CHECKPOINT_INVALID,
                          f"{path.name}: not a readable PyTorch checkpoint (truncated or damaged? "
                          f"{reason[:200]}); expected {EXPECTED}") from e
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HeyGemError(ErrorCode.CHECKPOINT_INVALID,
                          f"{path.name}: holds no state_dict of tensors; expected {EXPECTED}")
    return {_strip_prefix(k): v for k, v in state.items()}


def _strip_prefix(key: str) -> str:
    return key[len(DATA_PARALLEL_PREFIX):] if key.startswith(DATA_PARALLEL_PREFIX) else key


def _check_state_dict(path: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Compare keys and shapes first, so a wrong file gets a short message, not a traceback."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape ({'; '.join(wrong[:3])}{'; ...' if len(wrong) > 3 else ''})")
    if problems:
        raise HeyGemError(ErrorCode.CHECKPOINT_INVALID,
                          f"{path.name}: not {EXPECTED}: keys {', '.join(problems)}")
