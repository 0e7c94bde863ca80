/** Webview HTML with a strict CSP: scripts only with a nonce, styles from the extension. */
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, script: string, css: string, title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const js = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'dist', script));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', css));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${webview.cspSource} data:; style-src ${webview.cspSource} 'unsafe-inline'; script-src 'nonce-${nonce}';">
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
