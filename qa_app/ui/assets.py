"""The chat page's theme, style sheet and the small script behind its links and copy buttons."""
from __future__ import annotations

import gradio as gr

# Local fonts only (the default themes fetch web fonts): CJK text renders with Noto Sans CJK where installed.
THEME = gr.themes.Soft(
    primary_hue="blue",
    font=["Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)

CSS = """
.qa-badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:0.85em; font-weight:600;
            margin-bottom:6px; }
.qa-refused { background:#fff4e5; color:#9a4b00; border:1px solid #f5c27a; }
.qa-ungrounded { background:#fdecec; color:#a61b1b; border:1px solid #f2a7a7; }
.qa-filter-note { font-size:0.9em; color:var(--body-text-color-subdued); margin-bottom:4px; }
.qa-sources { margin-top:10px; border-top:1px solid var(--border-color-primary); padding-top:6px; font-size:0.92em; }
.qa-sources .qa-src-head { font-weight:600; color:var(--body-text-color-subdued); margin-bottom:4px; }
.qa-sources details { margin:4px 0; border-radius:4px; }
.qa-sources details.qa-flash { outline:2px solid #93b4f5; }
.qa-sources summary { cursor:pointer; }
.qa-sources .qa-meta { color:var(--body-text-color-subdued); }
.qa-sources .qa-passage { margin:4px 0 8px 1.2em; padding:6px 10px; border-left:3px solid #93b4f5;
                          background:var(--background-fill-secondary); line-height:1.7; }
.qa-sources .qa-quote { display:block; margin:2px 0 2px 1.6em; line-height:1.6; }
.qa-sources .qa-open { display:inline-block; margin-left:0.6em; white-space:nowrap; }
/* Dark text on the yellow in both themes: inherited light text on pale yellow was unreadable in dark mode. */
.qa-sources mark { background:#ffe58a; color:#1f2937; padding:0 1px; }
a.qa-cite { text-decoration:none; font-weight:600; cursor:pointer; }
.qa-plain { display:none !important; }
#qa-side .qa-side-actions { gap:6px; }
footer { display:none !important; }
#qa-refresh { display:none !important; }
.qa-upload { display:block; font-size:0.9em; }
.qa-upload input { display:block; margin-top:6px; max-width:100%; }
.qa-results, .qa-doc-list { list-style:none; padding:0; margin:6px 0; font-size:0.88em; }
.qa-results li, .qa-doc-list li { padding:3px 0; border-bottom:1px solid var(--border-color-primary); word-break:break-all; }
.qa-results .qa-ok { color:#15803d; } .qa-results .qa-err { color:#b91c1c; }
.qa-doc-list .qa-meta { color:var(--body-text-color-subdued); }
.qa-doc-del { margin-left:6px; font-size:0.85em; color:#b91c1c; border:1px solid currentColor; border-radius:4px;
              padding:0 6px; background:transparent; cursor:pointer; }
/* On a phone the side column (新对话, filters, saved conversations) comes first, compact,
   so it is reachable without scrolling past the chat and the examples. */
@media (max-width: 768px) {
  #qa-main { flex-direction:column !important; }
  #qa-side { order:-1; min-width:0 !important; }
  #qa-chat { height:calc(100vh - 260px) !important; min-height:360px !important; }
}
"""

# Event delegation on the document: the chat re-renders its messages as they stream, so handlers
# bound to elements would be lost. The copy handler runs in the capture phase, before Gradio's
# own, and gives the answer's plain text and sources instead of the message's markup.
HEAD = """
<script>
(() => {
  const copyLabel = /copy|复制/i;
  function flash(el) { el.classList.add('qa-flash'); setTimeout(() => el.classList.remove('qa-flash'), 1600); }
  async function writeClipboard(text) {
    try { await navigator.clipboard.writeText(text); return; } catch (e) { /* fall back below */ }
    const area = document.createElement('textarea');
    area.value = text; area.style.position = 'fixed'; area.style.left = '-9999px';
    document.body.appendChild(area); area.select();
    try { document.execCommand('copy'); } finally { area.remove(); }
  }
  // Uploads and deletions go through the API's own routes (/v1/documents, with its limits and the
  // session cookie): the page has no upload route of its own. Then the filters and the list refresh.
  const api = (path) => new URL('v1/documents' + path, document.baseURI).href;
  const refresh = () => { const b = document.querySelector('#qa-refresh'); if (b) b.click(); };
  function note(text, ok) {
    const li = document.createElement('li');
    li.textContent = text; li.className = ok ? 'qa-ok' : 'qa-err';
    document.querySelector('#qa-upload-results').prepend(li);
    return li;
  }
  function reason(xhrText, status) {
    try { const body = JSON.parse(xhrText); return (body.error && body.error.message) || body.detail || ('HTTP ' + status); }
    catch (e) { return 'HTTP ' + status; }
  }
  function upload(file) {
    return new Promise((resolve) => {
      const li = note(file.name + '：上传中 0%', true);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', api(''));
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) li.textContent = file.name + '：上传中 ' + Math.round(100 * ev.loaded / ev.total) + '%';
      };
      xhr.upload.onload = () => { li.textContent = file.name + '：索引中…'; };
      xhr.onload = () => {
        if (xhr.status === 200) {
          const body = JSON.parse(xhr.responseText);
          const verb = body.added.length ? '已添加' : body.updated.length ? '已更新' : body.unchanged.length ? '无变化（已在索引中）' : '未添加';
          const failed = Object.values(body.failed || {}).join('；');
          li.textContent = file.name + '：' + verb + (body.chunks ? '，' + body.chunks + ' 段' : '') + (failed ? '；' + failed : '');
          li.className = failed ? 'qa-err' : 'qa-ok';
        } else {
          li.textContent = file.name + '：失败 — ' + reason(xhr.responseText, xhr.status);
          li.className = 'qa-err';
        }
        resolve();
      };
      xhr.onerror = () => { li.textContent = file.name + '：失败 — 网络错误'; li.className = 'qa-err'; resolve(); };
      const form = new FormData();
      form.append('files', file, file.name);
      xhr.send(form);
    });
  }
  document.addEventListener('change', async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.id !== 'qa-upload-input') return;
    const files = [...input.files];
    input.value = '';
    for (const file of files) await upload(file);  // one at a time: the index takes one write at a time
    refresh();
  });
  document.addEventListener('click', async (event) => {
    const del = event.target instanceof Element && event.target.closest('button.qa-doc-del');
    if (!del) return;
    const title = del.getAttribute('data-title') || del.getAttribute('data-doc');
    if (!confirm('从索引中删除《' + title + '》？')) return;
    const response = await fetch(api('/' + encodeURIComponent(del.getAttribute('data-doc'))), {method: 'DELETE'});
    const text = await response.text();
    note(response.ok ? title + '：已删除' : title + '：删除失败 — ' + reason(text, response.status), response.ok);
    refresh();
  });
  document.addEventListener('click', (event) => {
    const target = event.target;
    if (!(target instanceof Element) || !target.closest('#qa-chat')) return;
    const cite = target.closest('a.qa-cite');
    if (cite) {
      event.preventDefault();
      const n = (cite.textContent.match(/\\d+/) || [''])[0];
      const holder = cite.closest('.message-row') || cite.closest('.message');
      const source = holder && holder.querySelector('details.qa-src-' + n);
      if (source) { source.open = true; source.scrollIntoView({block: 'center', behavior: 'smooth'}); flash(source); }
      return;
    }
    const open = target.closest('a.qa-open');
    if (open) {
      event.preventDefault();
      window.open(open.href, '_blank', 'noopener');
      return;
    }
    const button = target.closest('button');
    if (!button) return;
    const label = (button.getAttribute('aria-label') || '') + ' ' + (button.getAttribute('title') || '');
    if (!copyLabel.test(label) || /all/i.test(label)) return;
    // The message this button belongs to: its panel follows the message's row.
    const panel = button.closest('.message-buttons');
    const row = panel && panel.previousElementSibling;
    const plain = row ? row.querySelector('.qa-plain') : null;
    if (!plain) return;
    event.preventDefault();
    event.stopPropagation();
    writeClipboard(plain.getAttribute('title') || '');
    button.setAttribute('data-qa-copied', '1');
  }, true);
})();
</script>
"""
