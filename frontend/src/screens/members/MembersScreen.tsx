import { useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { api, ApiError, query } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";

type Member = components["schemas"]["MembershipOutput"];
type UserRow = components["schemas"]["UserOutput"];
export const MEMBER_ROLES = ["annotator", "reviewer", "expert", "manager"] as const;
type MemberRole = (typeof MEMBER_ROLES)[number];

function messageOf(exc: unknown): string {
  return exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc);
}

/** A project's members (one row per role) with each reader's workload; managers add, re-role and remove them,
 * administrators also create users. The server decides every change and says why it refuses one. */
export function MembersScreen() {
  const t = useT();
  const { slug = "" } = useParams();
  const { me } = useSession();
  const members = useAsync(async () => api.get<Member[]>(`/projects/${slug}/members/`), [slug]);
  const [notice, setNotice] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const roleName = (role: string) => t(`role.${role}` as "role.manager");

  async function act(action: () => Promise<string>) {
    setProblem(null);
    setNotice(null);
    try {
      setNotice(await action());
    } catch (exc) {
      setProblem(messageOf(exc));
    }
    await members.reload();
  }

  if (members.error) return <ErrorMessage error={members.error} onRetry={members.reload} />;
  if (!members.data) return <Loading />;
  return (
    <section className="manager-screen">
      <h1>{t("members.title", { project: slug })}</h1>
      {notice ? <p role="status">{notice}</p> : null}
      {problem ? (
        <p role="alert" className="error">
          {problem}
        </p>
      ) : null}
      <table aria-label={t("members.table")}>
        <thead>
          <tr>
            <th>{t("members.user")}</th>
            <th>{t("members.fullName")}</th>
            <th>{t("members.role")}</th>
            <th>{t("members.assigned")}</th>
            <th>{t("members.done")}</th>
            <th>{t("members.inProgress")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {members.data.map((member) => (
            <tr key={member.id} data-testid={`member-${member.username}-${member.role}`}>
              <td>{member.username}</td>
              <td>{member.full_name}</td>
              <td>
                <select
                  aria-label={`${t("members.role")}: ${member.username}`}
                  value={member.role}
                  onChange={(e) =>
                    void act(async () => {
                      const changed = await api.patch<Member>(`/projects/${slug}/members/${member.id}/`, {
                        role: e.target.value,
                      });
                      return t("members.roleChanged", { user: changed.username, role: roleName(changed.role) });
                    })
                  }
                >
                  {MEMBER_ROLES.map((role) => (
                    <option key={role} value={role}>
                      {roleName(role)}
                    </option>
                  ))}
                </select>
              </td>
              <td data-testid="assigned">{member.workload ? member.workload.assigned : t("members.noWorkload")}</td>
              <td data-testid="done">{member.workload ? member.workload.done : t("members.noWorkload")}</td>
              <td data-testid="in-progress">
                {member.workload ? member.workload.in_progress : t("members.noWorkload")}
              </td>
              <td>
                <button
                  type="button"
                  onClick={() => {
                    if (!window.confirm(t("members.confirmRemove", { user: member.username, role: roleName(member.role) })))
                      return;
                    void act(async () => {
                      await api.delete(`/projects/${slug}/members/${member.id}/`);
                      return t("members.removed", { user: member.username });
                    });
                  }}
                >
                  {t("members.remove")}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <AddMemberForm
        onAdd={(username, role) =>
          act(async () => {
            const added = await api.post<Member>(`/projects/${slug}/members/`, { username, role });
            return t("members.added", { user: added.username, role: roleName(added.role) });
          })
        }
      />
      {me.is_staff ? (
        <CreateUserForm
          onCreated={(user) => {
            setProblem(null);
            setNotice(t("members.userCreated", { user: user.username }));
          }}
        />
      ) : null}
    </section>
  );
}

function AddMemberForm({ onAdd }: { onAdd: (username: string, role: MemberRole) => Promise<void> }) {
  const t = useT();
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<MemberRole>("annotator");
  const found = useAsync(
    async () => (username.length >= 1 ? api.get<UserRow[]>(`/users/${query({ search: username })}`) : []),
    [username],
  );
  async function submit(event: FormEvent) {
    event.preventDefault();
    await onAdd(username.trim(), role);
    setUsername("");
  }
  return (
    <form onSubmit={(e) => void submit(e)} aria-label={t("members.add")}>
      <fieldset>
        <legend>{t("members.add")}</legend>
        <label>
          {t("members.username")}
          <input required list="member-candidates" value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <datalist id="member-candidates">
          {(found.data ?? []).map((user) => (
            <option key={user.id} value={user.username}>
              {user.full_name}
            </option>
          ))}
        </datalist>{" "}
        <label>
          {t("members.role")}
          <select value={role} onChange={(e) => setRole(e.target.value as MemberRole)}>
            {MEMBER_ROLES.map((r) => (
              <option key={r} value={r}>
                {t(`role.${r}`)}
              </option>
            ))}
          </select>
        </label>{" "}
        <button type="submit">{t("members.addButton")}</button>
      </fieldset>
    </form>
  );
}

function CreateUserForm({ onCreated }: { onCreated: (user: UserRow) => void }) {
  const t = useT();
  const empty = { username: "", password: "", first_name: "", last_name: "", email: "" };
  const [form, setForm] = useState(empty);
  const [problem, setProblem] = useState<string | null>(null);
  const field = (name: keyof typeof empty, label: string, type = "text", required = false) => (
    <label>
      {label}
      <input
        type={type}
        required={required}
        autoComplete={type === "password" ? "new-password" : "off"}
        value={form[name]}
        onChange={(e) => setForm((f) => ({ ...f, [name]: e.target.value }))}
      />
    </label>
  );
  async function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    try {
      const user = await api.post<UserRow>("/users/", form);
      setForm(empty);
      onCreated(user);
    } catch (exc) {
      setProblem(messageOf(exc));
    }
  }
  return (
    <form onSubmit={(e) => void submit(e)} aria-label={t("members.createUser")}>
      <fieldset>
        <legend>{t("members.createUser")}</legend>
        {field("username", t("members.username"), "text", true)} {field("password", t("members.password"), "password", true)}{" "}
        {field("first_name", t("members.firstName"))} {field("last_name", t("members.lastName"))}{" "}
        {field("email", t("members.email"), "email")}{" "}
        <button type="submit">{t("members.createButton")}</button>
        {problem ? (
          <p role="alert" className="error">
            {problem}
          </p>
        ) : null}
      </fieldset>
    </form>
  );
}
