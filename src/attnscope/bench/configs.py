"""Full-size Wan transformer configs (as data) for benchmarks with random weights.

Timing does not depend on weight values, so these reproduce the real models' cost without any download.
Values follow the diffusers configs of the released checkpoints.
"""

from __future__ import annotations

CONFIGS: dict[str, dict] = {
    "wan2.1-1.3b": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                        out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "wan2.1-14b": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16,
                       out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40,
                       cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "wan2.2-5b": dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                      out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                      cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "tiny": dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4,
                 out_channels=4, text_dim=32, freq_dim=16, ffn_dim=32, num_layers=3, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=32),
}
# The size each config is benchmarked at by default: (frames, height, width, vae_spatial).
SIZES: dict[str, tuple[int, int, int, int]] = {
    "wan2.1-1.3b": (81, 480, 832, 8),
    "wan2.1-14b": (81, 720, 1280, 8),
    "wan2.2-5b": (121, 704, 1280, 16),
    "tiny": (9, 32, 64, 8),
}
