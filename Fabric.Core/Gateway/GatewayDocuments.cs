using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fabric.Core.Gateway;

/// <summary>How the gateway writes and reads its JSON: web defaults (camelCase), enums as their names.</summary>
public static class GatewayJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
    };
}

/// <summary>The answer to <c>POST /jobs</c>: the id of the job accepted.</summary>
public sealed record JobAccepted(string JobId);

/// <summary>A refused request (<c>application/problem+json</c>): the errno-like code and the sentence.</summary>
public sealed record Problem(string Code, string Message)
{
    /// <summary>The problem document's title: the errno-like code.</summary>
    public string Title => Code;

    /// <summary>The problem document's detail: the sentence naming the objects involved.</summary>
    public string Detail => Message;
}

/// <summary>
/// The body of <c>GET /health</c>: 200 once the node is Up in the cluster, 503 before. <see cref="Jobs"/>: <c>ready</c>
/// once the node's job region has answered, <c>starting</c> before.
/// </summary>
public sealed record Health(string Node, string Address, string Status, int UpMembers, int Members, string Jobs);

/// <summary>
/// One event of a job's history (<c>GET /jobs/{id}/events</c>): its sequence number in the job's journal, when it
/// happened (Unix ms), its kind (submitted, placed, completed, …) and a sentence.
/// </summary>
public sealed record JobHistoryEntry(long Sequence, long AtMs, string Kind, string Text);
