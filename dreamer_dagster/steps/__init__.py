"""Steps: data sources, prompt steps, task steps and operations; DataDreamer's
``concat``, ``zipped``, ``wait``, ``concurrent``, ``DataCardType``, ``LazyRows``,
``LazyRowBatches`` and ``SuperStep`` for custom steps."""

from ..cards import DataCardType
from .background import concurrent, wait
from .data_sources import (
    CSVDataSource,
    DataSource,
    HFDatasetDataSource,
    HFHubDataSource,
    JSONDataSource,
    TextDataSource,
)
from .operations.functions import concat, zipped
from .prompt import (
    DataFromAttributedPrompt,
    DataFromPrompt,
    FewShotPrompt,
    FilterWithPrompt,
    JudgeGenerationPairsWithPrompt,
    JudgePairsWithPrompt,
    ProcessWithPrompt,
    Prompt,
    PromptStepError,
    RankWithPrompt,
)
from .prompt.few_shot_prompt_with_retrieval import FewShotPromptWithRetrieval
from .prompt.rag_prompt import RAGPrompt
from .registration import LazyRowBatches, LazyRows
from .step import Step, StepDeclarationError, StepDeclarationTypeError
from .super_step import SuperStep
from .tasks import CosineSimilarity, Embed, Retrieve, RunTaskModel

__all__ = [
    "CSVDataSource",
    "CosineSimilarity",
    "DataCardType",
    "DataFromAttributedPrompt",
    "DataFromPrompt",
    "DataSource",
    "Embed",
    "FewShotPrompt",
    "FewShotPromptWithRetrieval",
    "FilterWithPrompt",
    "HFDatasetDataSource",
    "HFHubDataSource",
    "JSONDataSource",
    "JudgeGenerationPairsWithPrompt",
    "JudgePairsWithPrompt",
    "LazyRowBatches",
    "LazyRows",
    "ProcessWithPrompt",
    "Prompt",
    "PromptStepError",
    "RAGPrompt",
    "RankWithPrompt",
    "Retrieve",
    "RunTaskModel",
    "Step",
    "StepDeclarationError",
    "StepDeclarationTypeError",
    "SuperStep",
    "TextDataSource",
    "concat",
    "concurrent",
    "wait",
    "zipped",
]
