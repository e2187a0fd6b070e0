import { api } from './api.js';

const form = document.getElementById('login-form');
const errorBox = document.getElementById('login-error');
const notice = document.getElementById('login-notice');
const submit = document.getElementById('login-submit');

const params = new URLSearchParams(window.location.search);
if (params.has('expired')) {
  notice.textContent = 'Your session ended. Sign in again to continue.';
  notice.hidden = false;
} else if (params.has('signedout')) {
  notice.textContent = 'You are signed out.';
  notice.hidden = false;
}
const SSO_NOTICES = {
  failed: 'Single sign-on did not complete. Try again, or ask your administrator.',
  stale: 'That sign-in took too long or was started in another browser. Try again.',
  norole: 'Your account has no Handoff role. Ask your administrator for access to a review queue.',
};
if (SSO_NOTICES[params.get('sso')]) {
  notice.textContent = SSO_NOTICES[params.get('sso')];
  notice.hidden = false;
}
document.getElementById('login-id').focus();

// Single sign-on when the console has an identity provider; the password form unless it is turned off.
api('/api/auth/methods')
  .then((m) => {
    if (m.oidc) {
      const link = document.getElementById('login-sso-link');
      link.textContent = m.oidc.label;
      link.href = `${m.oidc.start}${params.get('next') === '/inspector' ? '?next=/inspector' : ''}`;
      document.getElementById('login-sso').hidden = false;
      if (!m.password) {
        form.hidden = true;
        document.getElementById('login-or').hidden = true;
      }
      link.focus();
    }
  })
  .catch(() => undefined);

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  errorBox.hidden = true;
  const id = form.elements.id.value.trim();
  const password = form.elements.password.value;
  if (!id || !password) {
    errorBox.textContent = !id ? 'Enter your reviewer id.' : 'Enter your password.';
    errorBox.hidden = false;
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    await api('/api/login', { method: 'POST', body: { id, password } });
    // Only known pages: an address in `next` must not send a reviewer elsewhere.
    window.location.assign(params.get('next') === '/inspector' ? '/inspector' : '/');
  } catch (err) {
    errorBox.textContent =
      err.code === 'auth.invalid_credentials'
        ? 'Unknown reviewer id or wrong password.'
        : err.code === 'auth.throttled'
          ? err.message.replace(/^./, (c) => c.toUpperCase())
          : err.message;
    errorBox.hidden = false;
    form.elements.password.select();
  } finally {
    submit.disabled = false;
    submit.textContent = 'Sign in';
  }
});
