/** The engine process: released calls and a restart on next use after it dies. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { HeadLensApi } from '../../extension/extension';
import { EXT_ID, headLens, openSample, setSetting, until } from './util';

let api: HeadLensApi;

suite('engine process', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('the handshake reports the backend and the protocol version; the starter model loads', async () => {
    await api.engine.ensure();
    assert.ok(api.engine.init, 'no initialize result');
    // the test workspace asks for auto: onnxruntime from the checkout's node_modules
    assert.equal(api.engine.init.backend.name, 'onnx-cpu');
    assert.ok(api.engine.init.backend.skipped.some((s) => s.name === 'onnx-cuda'), 'auto says why it skipped CUDA');
    const model = await api.engine.ensureModel();
    assert.equal(model.family, 'adaptive');
    assert.ok(model.config.n_layer >= 1 && model.config.n_head >= 1);
  });

  test('killed while idle: the next Analyze Attention starts a new engine', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const pid = api.engine.pid;
    assert.ok(pid, 'no engine process');
    process.kill(pid, 'SIGKILL');
    await until(() => api.engine.pid === undefined, 'the client to notice the exit');
    assert.equal(api.engine.model, null, 'a dead engine still claims a model');
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    assert.ok(api.engine.pid && api.engine.pid !== pid, 'no new engine process');
    assert.ok(api.store.get(editor.document.uri.toString()), 'no analysis after the restart');
  });

  test('killed during an analysis: the pending call is released, not left hanging', async () => {
    const editor = await openSample();
    await api.engine.ensureModel();
    const pid = api.engine.pid!;
    let killed = false;
    const analysis = api.store.analyze(editor, 'document', { silent: true });
    // kill as soon as the request is on its way (the engine answers the first window quickly)
    setTimeout(() => {
      killed = true;
      process.kill(pid, 'SIGKILL');
    }, 50);
    const result = await Promise.race([analysis, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
    assert.ok(killed);
    assert.notEqual(result, 'hung', 'the analysis did not settle after the engine died');
    assert.equal(result, undefined, 'the analysis finished before the kill: nothing was tested');
    assert.equal(api.engine.pid, undefined);
    // and the engine comes back for the next request
    assert.ok(await api.store.analyze(editor, 'document', { silent: true }), 'no analysis after the restart');
    assert.ok(api.engine.pid && api.engine.pid !== pid);
  });

  test('a crash with several calls pending says so once, in one notification', async () => {
    const editor = await openSample();
    await api.engine.ensureModel();
    const pid = api.engine.pid!;
    // the extension and its tests share this API object: record what the extension shows
    const shown: string[] = [];
    const w = vscode.window as unknown as Record<'showWarningMessage' | 'showErrorMessage', (m: string, ...rest: unknown[]) => Thenable<unknown>>;
    const original = { warn: w.showWarningMessage, error: w.showErrorMessage };
    w.showWarningMessage = (m) => (shown.push(m), Promise.resolve(undefined));
    w.showErrorMessage = (m) => (shown.push(m), Promise.resolve(undefined));
    try {
      const pending = [api.store.analyze(editor, 'document', { silent: true }), api.engine.request('model/info', {}).catch(() => null)];
      setTimeout(() => process.kill(pid, 'SIGKILL'), 50);
      await Promise.all(pending);
      await until(() => shown.length > 0, 'the crash notification', 10_000);
      await new Promise((r) => setTimeout(r, 500)); // any second message would have come by now
    } finally {
      w.showWarningMessage = original.warn;
      w.showErrorMessage = original.error;
    }
    assert.equal(shown.length, 1, `messages: ${JSON.stringify(shown)}`);
    assert.match(shown[0], /the engine stopped \(the engine was killed \(SIGKILL\)\)\. It restarts on the next request\./);
  });

  test('in an untrusted workspace a checkpoint loads only after the user agrees, once per path', async () => {
    const checkpoint = path.join(vscode.extensions.getExtension(EXT_ID)!.extensionPath, 'media', 'models', 'starter-adaptive.safetensors');
    const workspace = vscode.workspace as unknown as Record<string, unknown>;
    const trust = Object.getOwnPropertyDescriptor(workspace, 'isTrusted');
    assert.ok(trust?.configurable, 'cannot simulate an untrusted workspace here');
    const w = vscode.window as unknown as Record<'showWarningMessage', (m: string, ...rest: unknown[]) => Thenable<unknown>>;
    const originalWarn = w.showWarningMessage;
    const asked: string[] = [];
    let answer: string | undefined;
    Object.defineProperty(workspace, 'isTrusted', { get: () => false, configurable: true });
    w.showWarningMessage = (m) => (asked.push(m), Promise.resolve(answer));
    const restore = await setSetting('modelPath', checkpoint);
    try {
      answer = undefined; // the user closes the question
      await assert.rejects(api.engine.ensureModel(), (e) => e instanceof vscode.CancellationError);
      assert.equal(asked.length, 1);
      assert.match(asked[0], /untrusted workspace/);
      answer = 'Load';
      const model = await api.engine.ensureModel(undefined, true);
      assert.equal(path.basename(model.path), 'starter-adaptive.safetensors');
      assert.equal(asked.length, 2);
      await api.engine.ensureModel(undefined, true);
      assert.equal(asked.length, 2, 'asked again for a checkpoint already allowed');
    } finally {
      Object.defineProperty(workspace, 'isTrusted', trust!);
      w.showWarningMessage = originalWarn;
      await restore();
    }
    await api.engine.ensureModel(); // the starter model again, for the suites after this one
  });
});
