/**
 * The signal catalogue: what each adaptive mechanism reports, declared once (DESIGN.md
 * "Adaptive signals"). Families list the entries that apply to a config; the views render any
 * entry from its scope, label, unit and range.
 */
import type { SignalSpec } from '../protocol';

export const SIGNALS = {
  loraFro: {
    name: 'loraFro',
    scope: 'head',
    label: 'dynamic LoRA ‖ΔW‖',
    description: "(α/r)·‖A B‖_F of the head's hypernetwork-generated value update",
    mechanism: 'a-gpt hypernetwork',
    perLayer: true,
  },
  loraTok: {
    name: 'loraTok',
    scope: 'head×token',
    label: 'dynamic LoRA update',
    description: '(α/r)·‖v_t A B‖₂: how far the hypernetwork moves the token’s value',
    mechanism: 'a-gpt hypernetwork',
    perLayer: true,
  },
  loraRel: {
    name: 'loraRel',
    scope: 'head×token',
    label: 'dynamic LoRA, relative',
    description: 'loraTok / ‖v_t‖₂: the value update relative to the value',
    mechanism: 'a-gpt hypernetwork',
    perLayer: true,
  },
  gate: {
    name: 'gate',
    scope: 'head×token',
    label: 'attention gate',
    range: [0, 1],
    description: 'σ(n_t · W_g[h]): the factor GatedAttn puts on head h’s output at token t',
    mechanism: 'GatedAttn',
    perLayer: true,
  },
  veGate: {
    name: 'veGate',
    scope: 'kvhead×token',
    label: 'value-embedding gate',
    range: [0, 2],
    description: '2·σ(W · x_t[:32]): the weight of the token’s value embedding in its kv head',
    mechanism: 'autoresearch value embeddings',
    perLayer: true,
  },
  hylaActive: {
    name: 'hylaActive',
    scope: 'head×token',
    label: 'HYLA active units',
    range: [0, 1],
    description: 'fraction of the generated value network’s ReLU units active for (t, k*)',
    mechanism: 'HYLA',
    perLayer: true,
  },
  skipGate: {
    name: 'skipGate',
    scope: 'layer×token',
    label: 'U-Net skip gate',
    range: [0, 1],
    description: '‖σ(g)⊙x_t‖ / (‖σ(g)⊙x_t‖ + ‖(1−σ(g))⊙w⊙s_t‖): the running stream’s share against the U-Net skip in the mix at token t',
    mechanism: 'parameter-golf U-Net skips',
    perLayer: true,
  },
  router: {
    name: 'router',
    scope: 'adapter×token',
    label: 'Temporal LoRA router',
    range: [0, 1],
    description: 'the Time Mixer’s softmax weight of each adapter at token t (it reads the token id only, so it is the same at every layer)',
    mechanism: 'Temporal LoRA',
    perLayer: true,
  },
  tttUpdate: {
    name: 'tttUpdate',
    scope: 'token',
    label: 'PonderTTT update',
    range: [0, 1],
    description: 'the decision of the token’s chunk: 1 UPDATE (the TTT branch ran, its fast weights learnt on the chunk), 0 SKIP (the base alone)',
    mechanism: 'PonderTTT',
    perLayer: false,
  },
  tttSignal: {
    name: 'tttSignal',
    scope: 'token',
    label: 'PonderTTT gate signal',
    description: 'the reconstruction loss the gate compares with τ for the token’s chunk: the mean over mini-batches of ttt_loss_step_0',
    mechanism: 'PonderTTT',
    perLayer: false,
  },
  tttDelta: {
    name: 'tttDelta',
    scope: 'chunk',
    label: 'LoRA-TTT ‖ΔW‖',
    description: '‖(α/r)·B·A‖_F of the test-time adapter on each module (q, k, v, o, mlp; the head apart) after the chunk’s update: per layer (modules, chunks)',
    mechanism: 'LoRA-TTT',
    perLayer: true,
  },
  tttDnll: {
    name: 'tttDnll',
    scope: 'token',
    label: 'ΔNLL with TTT',
    unit: 'nats',
    diverging: true,
    description: 'NLL of the token scored first with test-time training minus its NLL by the base model: negative where the adapters trained on the earlier chunks helped',
    mechanism: 'LoRA-TTT',
    perLayer: false,
  },
  dNll: {
    name: 'dNll',
    scope: 'token',
    label: 'ΔNLL (A − B)',
    unit: 'nats',
    diverging: true,
    description: 'NLL of model A minus NLL of model B on the same token: negative where A is better',
    mechanism: 'compare',
    perLayer: false,
  },
} as const satisfies Record<string, SignalSpec>;

export type SignalName = keyof typeof SIGNALS;

export function signalsOf(...names: SignalName[]): SignalSpec[] {
  return names.map((n) => ({ ...SIGNALS[n] }) as SignalSpec);
}
