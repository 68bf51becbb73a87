"""The EAT encoder (a ViT over log-mel patches) and its pre-training decoder, in plain PyTorch.

Follows official EAT exactly where it matters for loading its weights:
16x16 conv patches ordered time-major, fixed 2-D sin-cos positions (first half of the channels
encodes the frequency index, second half the time index), a CLS token without position, a
LayerNorm before the blocks, POST-LayerNorm blocks that also return their FFN output, no final
norm. Sizes are factories in one registry: `create_model("eat_base")`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("mean", "cls", "freq")  # clip embeddings of EATEncoder.embed


@dataclass(frozen=True)
class EATConfig:
    """Architecture of an EAT encoder (and of its pre-training decoder)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    n_mels: int = 128
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path: float = 0.0  # stochastic depth at the last block (linear ramp); 0 in pre-training
    decoder_depth: int = 6
    decoder_kernel: int = 3
    decoder_groups: int = 16

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        if self.embed_dim % 4:
            raise ValueError("embed_dim must be a multiple of 4 for 2-D sin-cos positions")
        if self.n_mels % self.patch_size:
            raise ValueError(f"n_mels {self.n_mels} not a multiple of patch {self.patch_size}")

    @property
    def freq_patches(self) -> int:
        return self.n_mels // self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


# --- positions ----------------------------------------------------------------------------------


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """(P,) positions -> (P, dim): [sin(p * w_k), cos(p * w_k)], w_k = 10000^(-k / (dim/2)).

    Every step in float32 numpy, as official EAT computes its table (its `mae.py`; fairseq's
    data2vec copy works in float64, which differs by up to 5e-5 at time index 767).
    """
    omega = np.arange(dim // 2, dtype=np.float32)
    omega /= dim / 2.0
    omega = 1.0 / 10000**omega  # (dim/2,) float32
    angles = np.einsum("m,d->md", positions.astype(np.float32), omega)  # (P, dim/2)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim: int, time_patches: int, freq_patches: int) -> torch.Tensor:
    """(time_patches * freq_patches, dim) fixed positions, row t * F + f, float32.

    First dim/2 channels encode the frequency (width) index, the last dim/2 the time (height)
    index, as MAE's meshgrid order gives and EAT inherits. A row depends only on (t, f), not on
    the number of time patches, so clips of any length share one formula.
    """
    t = np.repeat(np.arange(time_patches), freq_patches)  # (N,) time index per token
    f = np.tile(np.arange(freq_patches), time_patches)  # (N,) frequency index per token
    table = np.concatenate([sincos_1d(dim // 2, f), sincos_1d(dim // 2, t)], axis=1)
    return torch.from_numpy(table.astype(np.float32))


# --- blocks -------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


# Where gradients flow through bf16 CPU tensors, attention and the patch convolution compute in
# float32: torch's CPU kernels for their bf16 backward run much slower than the float32 ones
# (`asdflow bench precision` times both). Same function, more precise; forward-only passes and
# GPUs keep bf16. A switch only so the benchmark can time the plain bf16 path beside it.
FLOAT32_CPU_BACKWARD = True


def _slow_cpu_bf16_backward(t: torch.Tensor) -> bool:
    """Whether `t` is a CPU tensor under bf16 autocast that gradients will flow through."""
    return (
        FLOAT32_CPU_BACKWARD
        and t.device.type == "cpu"
        and torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (official key names: qkv, proj)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        if _slow_cpu_bf16_backward(q):
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as the reference
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PostNormBlock(nn.Module):
    """EAT's block: x = x + attn(x); r = norm1(x); t = mlp(r); x = norm2(r + t). Returns (x, t).

    The FFN output `t` (before the residual) is what the teacher's targets are built from.
    A standard pre-LN block would load the same weights but compute a different function.
    """

    def __init__(self, cfg: EATConfig, drop_path: float = 0.0):
        super().__init__()
        dim = cfg.embed_dim
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.drop_path(self.attn(x))
        r = self.norm1(x)
        t = self.mlp(r)
        x = self.norm2(r + self.drop_path(t))
        return x, t


class PatchEmbed(nn.Module):
    """(B, 1, T, F) log-mel -> (B, T/16 * F/16, D) tokens, ordered time-major (t * F/16 + f)."""

    def __init__(self, cfg: EATConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _slow_cpu_bf16_backward(x):
            with torch.autocast("cpu", enabled=False):
                x = self.proj(x.float())
        else:
            x = self.proj(x)
        return x.flatten(2).transpose(1, 2)  # (B, D, T', F') -> (B, T'F', D)


# --- the encoder --------------------------------------------------------------------------------


def _load_position_table(module, state_dict, prefix, *args) -> None:
    """A state dict defines the table: set (or clear) it before the tensors are copied."""
    table = state_dict.get(prefix + "position_table")
    module.set_position_table(table)


class EATEncoder(nn.Module):
    """EAT's ViT encoder: tokens of a (B, 1, T, n_mels) log-mel, optionally with masked tokens
    removed, through the post-LN blocks. `forward_features` -> tokens; `embed` -> clip vector."""

    def __init__(self, cfg: EATConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pre_norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(PostNormBlock(cfg, rate) for rate in rates)
        self._positions: dict[int, torch.Tensor] = {}  # time patches -> (N, D), never saved
        # The position table an imported checkpoint carries (official EAT stores its own,
        # (768 x 8, D)); None: computed by sincos_2d. Part of the state dict only when set.
        self.register_buffer("position_table", None)
        self.register_load_state_dict_pre_hook(_load_position_table)
        self.init_weights()

    def set_position_table(self, table: torch.Tensor | None) -> None:
        """Use this stored (rows, D) table (rows t * F + f) for the positions; None: compute."""
        if table is not None:
            table = table.detach().reshape(-1, table.shape[-1]).to(torch.float32).clone()
            if table.shape[1] != self.cfg.embed_dim or table.shape[0] % self.cfg.freq_patches:
                raise ValueError(
                    f"a position table of shape {tuple(table.shape)} does not fit "
                    f"{self.cfg.freq_patches} frequency patches of width {self.cfg.embed_dim}"
                )
        self.position_table = table
        self._positions.clear()

    def init_weights(self) -> None:
        """Reference init: Linear N(0, 0.02), conv xavier, LayerNorm (1, 0), CLS N(0, 1)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        conv = self.patch_embed.proj
        nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
        nn.init.zeros_(conv.bias)
        nn.init.normal_(self.cls_token, std=1.0)

    def grid(self, n_frames: int) -> tuple[int, int]:
        """(time patches, frequency patches) of an input with `n_frames` frames."""
        return n_frames // self.cfg.patch_size, self.cfg.freq_patches

    def positions(self, time_patches: int, device: torch.device) -> torch.Tensor:
        """(time_patches * F, D): the stored table's first rows when it is long enough (as
        official EAT slices it), else the computed one."""
        rows = time_patches * self.cfg.freq_patches
        table = self.position_table
        if table is not None and table.shape[0] >= rows:
            return table[:rows].to(device)
        if time_patches not in self._positions:
            self._positions[time_patches] = sincos_2d(
                self.cfg.embed_dim, time_patches, self.cfg.freq_patches
            )
        return self._positions[time_patches].to(device)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Accept (B, T, F) or (B, 1, T, F); refuse shapes the patch grid cannot take."""
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"expected a (B, 1, T, {self.cfg.n_mels}) log-mel, got {tuple(x.shape)}"
            )
        if x.shape[3] != self.cfg.n_mels:
            raise ValueError(
                f"expected {self.cfg.n_mels} mel bins, got {x.shape[3]} (input {tuple(x.shape)})"
            )
        if x.shape[2] == 0 or x.shape[2] % self.cfg.patch_size:
            raise ValueError(
                f"frames must be a positive multiple of the patch size {self.cfg.patch_size}, "
                f"got {x.shape[2]}"
            )
        return x

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with positions: (B, 1, T, F) -> (B, N, D)."""
        x = self.check_input(x)
        patches = self.patch_embed(x)  # (B, N, D)
        time_patches, _ = self.grid(x.shape[2])
        return patches + self.positions(time_patches, patches.device).to(patches.dtype)

    def forward_tokens(
        self, tokens: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Blocks over [CLS; kept tokens].

        tokens: (B, N, D) with positions; keep: (B, K) indices of the tokens to keep (the same K
        for every row) or None for all. Returns the (B, 1 + K, D) outputs and each block's FFN
        output (B, 1 + K, D).
        """
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        x = self.pre_norm(torch.cat([cls, tokens], dim=1))  # (B, 1 + K, D)
        ffn = []
        for block in self.blocks:
            x, t = block(x)
            ffn.append(t)
        return x, ffn

    def forward_features(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, T, F) log-mel -> (B, 1 + K, D) outputs, CLS first."""
        return self.forward_tokens(self.tokens(x), keep)[0]

    def embedding_dim(self, pooling: str = "mean") -> int:
        """Width of `embed(x, pooling)`: D, or D per frequency row of patches for "freq"."""
        if pooling not in POOLINGS:
            raise ValueError(f"Unsupported pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
        return self.cfg.embed_dim * (self.cfg.freq_patches if pooling == "freq" else 1)

    def embed(self, x: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """The clip embedding: mean of the patch outputs (B, D) (the paper's eq. 8), CLS (B, D),
        or "freq": the mean over time of each frequency row of patches, rows concatenated
        (B, F/16 * D), which keeps where in the spectrum a sound lies (README, issue 10)."""
        self.embedding_dim(pooling)  # validates
        out = self.forward_features(x)
        if pooling == "mean":
            return out[:, 1:].mean(dim=1)
        if pooling == "cls":
            return out[:, 0]
        patches = out[:, 1:]  # (B, T/16 * F/16, D), frequency rows fastest
        rows = patches.reshape(patches.shape[0], -1, self.cfg.freq_patches, patches.shape[-1])
        return rows.mean(dim=1).flatten(1)  # (B, F/16 * D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


# --- the pre-training decoder -------------------------------------------------------------------


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, without affine parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2]).permute(0, 3, 1, 2)


class Decoder2d(nn.Module):
    """EAT's light CNN decoder: (B, N, D) tokens on the (T', F') grid -> (B, N, D) predictions.

    `depth` x [grouped Conv2d -> channel LayerNorm (no affine) -> GELU -> + residual], then a
    Linear. Key names follow the reference (`blocks.K.0` conv, `proj`).
    """

    def __init__(self, cfg: EATConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    dim,
                    dim,
                    cfg.decoder_kernel,
                    padding=cfg.decoder_kernel // 2,
                    groups=cfg.decoder_groups,
                ),
                ChannelLayerNorm(),
                nn.GELU(),
            )
            for _ in range(cfg.decoder_depth)
        )
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, d = x.shape
        h, w = grid
        x = x.transpose(1, 2).reshape(b, d, h, w)  # (B, D, T', F')
        for block in self.blocks:
            x = block(x) + x
        return self.proj(x.reshape(b, d, n).transpose(1, 2))  # (B, N, D)


# --- registry -----------------------------------------------------------------------------------

MODELS: dict[str, Callable[..., EATConfig]] = {}


def register_model(fn: Callable[..., EATConfig]) -> Callable[..., EATConfig]:
    MODELS[fn.__name__] = fn
    return fn


@register_model
def eat_tiny(**overrides) -> EATConfig:
    """For the CPU demo and tests: 192-d, 6 blocks (about 2.7M parameters)."""
    return replace(EATConfig(embed_dim=192, depth=6, num_heads=3, decoder_groups=16), **overrides)


@register_model
def eat_small(**overrides) -> EATConfig:
    return replace(EATConfig(embed_dim=384, depth=12, num_heads=6), **overrides)


@register_model
def eat_base(**overrides) -> EATConfig:
    """EAT-base: 85.25M encoder parameters (+ 2.59M decoder)."""
    return replace(EATConfig(), **overrides)


@register_model
def eat_large(**overrides) -> EATConfig:
    """EAT-large: 24 blocks of 1024-d, 16 heads."""
    return replace(EATConfig(embed_dim=1024, depth=24, num_heads=16), **overrides)


def model_config(name: str, **overrides) -> EATConfig:
    if name not in MODELS:
        raise ValueError(f"Unsupported model {name!r}: known {sorted(MODELS)}")
    return MODELS[name](**overrides)


def create_model(name: str, **overrides) -> EATEncoder:
    """An encoder of a registered size, e.g. create_model("eat_base", drop_path=0.1)."""
    return EATEncoder(model_config(name, **overrides))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
