/**
 * The HTML shell of both webviews: a strict Content-Security-Policy (scripts only with this
 * load's nonce, styles and images only from the extension), the view's bundle from media/dist and
 * its stylesheet from media/. No CDN: everything is inside the extension.
 */
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

/** Scripts on; the webview may read nothing but the extension's media folder. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'media')], retainContextWhenHidden: false };
}

export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, script: string, css: string, title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const js = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'dist', script));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', css));
  // D3 sets style attributes, hence 'unsafe-inline' for styles only; data: images are the PNG export
  const csp = [`default-src 'none'`, `img-src ${webview.cspSource} data: blob:`, `style-src ${webview.cspSource} 'unsafe-inline'`, `font-src ${webview.cspSource}`, `script-src 'nonce-${nonce}'`].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp};">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${style}" rel="stylesheet">
<title>${title}</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${js}"></script>
</body>
</html>`;
}
