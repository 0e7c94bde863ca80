/**
 * The engine's state behind the protocol: backend, loaded model, and the handlers of every
 * method. Shared by `headlens serve` and the in-memory protocol tests.
 */
import { EngineServer, ENGINE_VERSION } from './server';
import { ErrorCode, PROTOCOL_VERSION, type AnalyzeEvent, type BackendChoice, type InitializeResult, type ModelInfo } from '../protocol';
import { currentBackend, fallBackFrom } from '../runtime/tfjs/backend';
import { setModulePaths } from '../runtime/modules';
import { initRuntime, currentRuntime } from '../runtime/select';
import { loadModel, type LoadedModel } from '../runtime/loaded';
import type { LoadRequest } from '../io/checkpoint';
import { analyzeText } from '../analysis/analyze';
import { BadInputError, DeviceError } from '../errors';
import { takeDeviceErrors } from '../runtime/tfjs/webgpu';
import { registerTrainingHandlers } from '../train/session';
import { registerMethods } from './methods';

export class EngineService {
  loaded: LoadedModel | null = null;
  private backendChoice: BackendChoice;
  private threads = 0;

  constructor(backend: BackendChoice = 'auto') {
    this.backendChoice = backend;
  }

  async initialize(choice?: BackendChoice, modulePaths?: string[], threads?: number): Promise<InitializeResult> {
    if (modulePaths) setModulePaths(modulePaths);
    if (choice) this.backendChoice = choice;
    if (threads !== undefined) this.threads = threads;
    const state = await initRuntime(this.backendChoice, this.threads);
    return {
      protocolVersion: PROTOCOL_VERSION,
      engineVersion: ENGINE_VERSION,
      backend: state.info,
      device: state.device,
      models: this.loaded ? [this.loaded.info] : [],
    };
  }

  async load(path: string | undefined, config?: LoadRequest['config']): Promise<ModelInfo> {
    const state = currentRuntime() ?? (await initRuntime(this.backendChoice, this.threads));
    const next = await loadModel({ path, config }, state);
    await this.loaded?.dispose();
    this.loaded = next;
    return next.info;
  }

  requireModel(): LoadedModel {
    if (!this.loaded) {
      const e = new Error('no model loaded: call model/load first') as Error & { code: number };
      e.code = ErrorCode.NoModel;
      throw e;
    }
    return this.loaded;
  }

  /** Register every method on a server. */
  attach(server: EngineServer): EngineServer {
    server.on('initialize', async (p) => {
      if (typeof p.protocolVersion === 'number' && p.protocolVersion !== PROTOCOL_VERSION) {
        throw new BadInputError(`protocol version mismatch: client speaks ${p.protocolVersion}, engine ${PROTOCOL_VERSION} (update Head Lens)`);
      }
      return this.initialize(p.backend, p.modulePaths, p.threads);
    });
    server.on('model/load', async (p) => this.load(p.path, p.config));
    server.on('model/info', async () => this.loaded?.info ?? null);
    server.on('analyze', async (p, ctx) => {
      const lm = this.requireModel();
      return withDeviceGuard(async () => {
        const gen = analyzeText(lm, p, ctx.token);
        for (;;) {
          const step = await gen.next();
          if (step.done) return step.value;
          ctx.progress(step.value satisfies AnalyzeEvent);
        }
      });
    });
    server.on('shutdown', async () => null);
    registerMethods(server, () => this.requireModel());
    registerTrainingHandlers(server);
    return server;
  }
}

/**
 * A GPU error during a request fails the request and moves the engine to the next backend for the
 * rest of the run (a model loaded on the failed device is reloaded by the next `model/load`).
 */
async function withDeviceGuard<T>(run: () => Promise<T>): Promise<T> {
  const backend = currentBackend();
  takeDeviceErrors();
  try {
    const out = await run();
    const errs = takeDeviceErrors();
    if (errs.length) throw new DeviceError(`the GPU reported an error, results discarded: ${errs[0]}`);
    return out;
  } catch (e) {
    const errs = takeDeviceErrors();
    if (backend && backend.info.name === 'webgpu' && (e instanceof DeviceError || errs.length)) {
      const next = await fallBackFrom('webgpu', errs[0] ?? (e as Error).message);
      throw new DeviceError(`the GPU failed (${errs[0] ?? (e as Error).message}); switched to ${next.info.name}: reload the model and run again`);
    }
    throw e;
  }
}
