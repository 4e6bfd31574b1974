// The example server's models (examples/todo/src/models.rs) as the client
// declares them, by wire name.
export const schema = {
  models: {
    Todo: {
      fields: {
        archivedAt: { nullable: true, type: "date" },
        completedAt: { nullable: true, type: "date" },
        createdAt: { type: "date" },
        dueOn: { nullable: true, type: "dateOnly" },
        estimate: { nullable: true, type: "number" },
        id: { type: "string" },
        notes: { nullable: true, type: "string" },
        priority: { type: "number" },
        title: { type: "string" },
        workspaceId: { indexed: true, type: "string" },
      },
      groupKey: "workspaceId",
      loadStrategy: "instant",
    },
    Label: {
      fields: {
        color: { type: "string" },
        id: { type: "string" },
        name: { type: "string" },
        workspaceId: { indexed: true, type: "string" },
      },
      groupKey: "workspaceId",
      loadStrategy: "instant",
    },
    TodoLabel: {
      fields: {
        createdAt: { type: "date" },
        id: { type: "string" },
        labelId: { indexed: true, type: "string" },
        todoId: { indexed: true, type: "string" },
        workspaceId: { indexed: true, type: "string" },
      },
      groupKey: "workspaceId",
      loadStrategy: "instant",
    },
  },
};
