// The case page's dialogs: a comment or reason before a decision, and the plan editor (modify).
import { h, humanize, replace } from './dom.js';
import { diff, objectForm, validate } from './form.js';
import { closeModal, modal, toast } from './ui.js';
import { diffTable } from './case-format.js';

/** A dialog asking for one text (a comment or a reason) before `onSend(text)`; open until it resolves. */
export function textDialog({ title, subtitle, label, placeholder, required, confirm, kind, onSend }) {
  const area = h('textarea#dialog-text', { rows: '4', placeholder, autofocus: true });
  const error = h('div.field-error', { role: 'alert' });
  const submit = async () => {
    const text = area.value.trim();
    if (required && !text) {
      error.textContent = `${label} is required.`;
      area.classList.add('invalid');
      return;
    }
    dialog.setActions([{ label: 'Sending…', kind, disabled: true, onClick: () => undefined }]);
    try {
      await onSend(text);
      closeModal();
    } catch {
      dialog.setActions(actions);
    }
  };
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !required)) {
      e.preventDefault();
      void submit();
    }
  });
  const actions = [
    { label: 'Cancel', kind: 'secondary', onClick: closeModal },
    { label: confirm, kind, onClick: submit, key: required ? 'Ctrl+Enter' : 'Enter', id: 'confirm' },
  ];
  const dialog = modal({
    title,
    subtitle,
    body: h(
      'div',
      h(
        'label.field-label',
        { for: 'dialog-text' },
        label,
        required ? h('span.req', ' *') : h('span.faint', ' (optional)'),
      ),
      area,
      error,
    ),
    actions,
  });
}

/**
 * Edit the proposed actions of case `c` in forms generated from their schemas; review the diff; send
 * with `onSend(actions, comment)` (a rejected promise keeps the dialog open on a field the server named).
 */
export function modifyDialog(c, onSend) {
  const forms = c.plan.actions.map((a) => {
    const schema = c.schemas[a.type];
    const masked = a.masked ? a.sensitive : [];
    const f = objectForm(schema, a.args, { masked, idPrefix: `a${a.index}` });
    return { a, schema, f };
  });
  const comment = h('textarea#modify-comment', {
    rows: '2',
    placeholder: 'Why you changed the plan (required; kept in the audit log)',
  });
  const commentErr = h('div.field-error', { role: 'alert' });
  const editStep = h(
    'div.modify',
    forms.map(({ a, f }) =>
      h(
        'fieldset.action-form',
        h(
          'legend',
          h('span.action-index', String(a.index + 1)),
          ` ${a.description || humanize(a.type)} `,
          h('code', a.type),
        ),
        f.el,
      ),
    ),
    h(
      'div.field',
      h('label.field-label', { for: 'modify-comment' }, 'Reason for the change', h('span.req', ' *')),
      comment,
      commentErr,
    ),
  );
  let edited = null;
  const collect = () => {
    let ok = true;
    edited = forms.map(({ a, schema, f }) => {
      const args = f.read();
      const errors = validate(schema, args);
      f.showErrors(errors);
      if (errors.length) ok = false;
      return { a, args };
    });
    const note = comment.value.trim();
    commentErr.textContent = note ? '' : 'Say why the plan was changed.';
    comment.classList.toggle('invalid', !note);
    if (!note) ok = false;
    return ok;
  };
  const review = () => {
    if (!collect()) {
      const first = dialog.el.querySelector('.invalid');
      if (first) first.focus();
      return;
    }
    const rows = [];
    for (const { a, args } of edited)
      for (const d of diff(a.args, args))
        rows.push({ action: `${a.index + 1}. ${a.type}`, path: d.path, before: d.before, after: d.after });
    if (!rows.length) {
      commentErr.textContent = 'Nothing changed. To run the plan as proposed, approve it instead.';
      return;
    }
    const restart =
      c.tier.steps.length > 1
        ? ` This tier needs ${c.tier.steps.length} approvals: your edit discards ${c.approvals.length ? 'the approvals given so far' : 'none yet'} and the edited plan needs them again.`
        : '';
    replace(
      dialog.el.querySelector('.modal-body'),
      h(
        'div',
        h(
          'p',
          `You are about to send these changes. The agent re-checks the edited plan against the policy; a change that raises the risk needs a higher tier.${restart}`,
        ),
        diffTable(rows),
        h('p.small', h('span.faint', 'Reason: '), '“', h('bdi', comment.value.trim()), '”'),
      ),
    );
    dialog.setActions([
      {
        label: 'Back to editing',
        kind: 'secondary',
        onClick: () => {
          replace(dialog.el.querySelector('.modal-body'), editStep);
          dialog.setActions(editActions);
        },
      },
      { label: 'Send modification', kind: 'approve', id: 'send-modify', onClick: send },
    ]);
    setTimeout(() => {
      const b = dialog.el.querySelector('[data-action="send-modify"]');
      if (b) b.focus();
    }, 0);
  };
  const send = async () => {
    // Arguments only: the planner's rationale, confidence and risk are not the reviewer's to change.
    const actions = edited.map(({ a, args }) => ({ type: a.type, args }));
    dialog.setActions([{ label: 'Sending…', kind: 'approve', disabled: true, onClick: () => undefined }]);
    try {
      await onSend(actions, comment.value.trim());
      closeModal();
      const more = c.tier.steps.length > 1;
      toast(
        more
          ? 'Edit recorded. Earlier approvals no longer count: the edited plan goes back to the queue for its approvals.'
          : 'Edit recorded as your approval. The agent checks the edited plan against the policy again: a change that needs a higher tier opens a case there.',
        'ok',
      );
    } catch (err) {
      if (err.code === 'contract.invalid' && err.details && err.details.path) {
        replace(dialog.el.querySelector('.modal-body'), editStep);
        dialog.setActions(editActions);
        const m = /^actions\.(\d+)\.args\.(.+)$/.exec(err.details.path);
        if (m && forms[Number(m[1])])
          forms[Number(m[1])].f.showErrors([
            {
              path: m[2],
              message: (err.details.issues && err.details.issues[0] && err.details.issues[0].message) || 'is invalid',
            },
          ]);
      } else closeModal();
    }
  };
  const editActions = [
    { label: 'Cancel', kind: 'secondary', onClick: closeModal },
    { label: 'Review changes', kind: 'primary', id: 'review-modify', onClick: review },
  ];
  const dialog = modal({
    title: 'Modify the proposed actions',
    subtitle: 'Fields come from each action’s contract and are checked here and again on the server.',
    body: editStep,
    actions: editActions,
    wide: true,
  });
}
